/* Integer expressions over + - * / (exact division only), shared by arith and countdown:
 * small trees built by generators, rendered with the fewest parentheses that keep their value,
 * and a bounded parser/evaluator for model answers. */
#ifndef EXITRL_TASKS_EXPR_H
#define EXITRL_TASKS_EXPR_H
#include <stddef.h>
#include <stdint.h>

enum {
    EXPR_MAX_NODES = 32,   /* nodes of a generated tree */
    EXPR_MAX_NUMBERS = 8,  /* numbers a parse result lists (it counts all of them) */
    EXPR_MAX_NESTING = 32, /* parenthesis depth the parser accepts */
    EXPR_MAX_DIGITS = 9    /* a longer number is an overflow */
};

typedef enum {
    EXPR_OK = 0,
    EXPR_SYNTAX,       /* not an expression (or empty, or nested too deep) */
    EXPR_BAD_DIVISION, /* division by zero or with a remainder */
    EXPR_OVERFLOW      /* a number or an intermediate value outside int64 / EXPR_MAX_DIGITS */
} expr_status;

typedef struct {
    char op;         /* '+', '-', '*', '/' for an operator, 0 for a number */
    int left, right; /* child node indices of an operator */
    int64_t value;   /* the number, or the operator's value */
} expr_node;

typedef struct {
    expr_node node[EXPR_MAX_NODES];
    int count;
} expr_tree;

/* a op b into *out. Returns EXPR_OK, EXPR_BAD_DIVISION or EXPR_OVERFLOW (then *out is unset). */
expr_status expr_apply(char op, int64_t a, int64_t b, int64_t *out);
/* Appends a number node; returns its index, or -1 when the tree is full. */
int expr_add_number(expr_tree *t, int64_t value);
/* Appends an operator node over existing nodes l and r, computing its value. Returns its index,
 * or -1 when the tree is full or the operation is not exact (EXPR_BAD_DIVISION/EXPR_OVERFLOW). */
int expr_add_op(expr_tree *t, char op, int l, int r);
/* Writes the subtree at root as text (no spaces) into buf[cap], NUL-terminated. Returns the
 * length, or -1 if it does not fit. Parsing the text gives the node's value back. */
int expr_render(const expr_tree *t, int root, char *buf, size_t cap);

typedef struct {
    expr_status status; /* a syntax error outranks the semantic ones; else the first one met */
    int64_t value;      /* valid when status == EXPR_OK */
    int n_numbers;      /* numbers in the expression (counted even past EXPR_MAX_NUMBERS) */
    int64_t numbers[EXPR_MAX_NUMBERS]; /* the first EXPR_MAX_NUMBERS of them, in text order */
} expr_result;

/* Parses and evaluates s[0..len) (any bytes; never reads past len). Grammar, spaces/tabs/newlines
 * allowed between tokens: expr = term {('+'|'-') term}; term = factor {('*'|'/') factor};
 * factor = digits | '(' expr ')'. No unary minus. */
void expr_parse(const char *s, size_t len, expr_result *out);
#endif
