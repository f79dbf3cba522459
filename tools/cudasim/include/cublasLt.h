#include "sim_cuda.h"
