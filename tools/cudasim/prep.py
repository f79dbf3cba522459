# Turns kernels/cuda/*.cu into host C++ for the simulator: launches become sim_launch(...)(...),
# dynamic shared memory comes from the simulator.
import re, sys, os, shutil
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
for f in os.listdir(src):
    p = os.path.join(src, f)
    s = open(p).read()
    if f.endswith('.cu'):
        s = re.sub(r'([A-Za-z_]\w*(?:<[^<>;]*>)?)\s*<<<(.*?)>>>', r'sim_launch(\1, \2)', s, flags=re.S)
        s = re.sub(r'extern __shared__ (\w+) (\w+)\[\];', r'\1 *\2 = (\1 *)sim_dynamic_smem();', s)
        open(os.path.join(dst, f[:-3] + '.cpp'), 'w').write(s)
    else:
        shutil.copy(p, os.path.join(dst, f))
