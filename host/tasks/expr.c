#include "tasks/expr.h"

#include <stdio.h>
#include <string.h>

expr_status expr_apply(char op, int64_t a, int64_t b, int64_t *out) {
    int64_t r;
    switch (op) {
    case '+':
        if (__builtin_add_overflow(a, b, &r)) return EXPR_OVERFLOW;
        break;
    case '-':
        if (__builtin_sub_overflow(a, b, &r)) return EXPR_OVERFLOW;
        break;
    case '*':
        if (__builtin_mul_overflow(a, b, &r)) return EXPR_OVERFLOW;
        break;
    case '/':
        if (b == 0) return EXPR_BAD_DIVISION;
        if (a == INT64_MIN && b == -1) return EXPR_OVERFLOW;
        if (a % b != 0) return EXPR_BAD_DIVISION;
        r = a / b;
        break;
    default:
        return EXPR_BAD_DIVISION; /* unreachable for callers that pass + - * / */
    }
    *out = r;
    return EXPR_OK;
}

int expr_add_number(expr_tree *t, int64_t value) {
    if (t->count >= EXPR_MAX_NODES) return -1;
    expr_node *n = &t->node[t->count];
    n->op = 0;
    n->left = n->right = -1;
    n->value = value;
    return t->count++;
}

int expr_add_op(expr_tree *t, char op, int l, int r) {
    if (t->count >= EXPR_MAX_NODES) return -1;
    int64_t v;
    if (expr_apply(op, t->node[l].value, t->node[r].value, &v) != EXPR_OK) return -1;
    expr_node *n = &t->node[t->count];
    n->op = op;
    n->left = l;
    n->right = r;
    n->value = v;
    return t->count++;
}

static int precedence(char op) { return op == '+' || op == '-' ? 1 : op == '*' || op == '/' ? 2 : 3; }

/* A right operand of equal precedence keeps its parentheses unless regrouping cannot change the
 * value: a+(b+c), a+(b-c) and a*(b*c). (a*(b/c) is kept: it reads as a*b/c, equal only because
 * the division was exact; the parentheses make the reading obvious.) */
static int right_needs_parens(char parent, char child) {
    int pp = precedence(parent), pc = precedence(child);
    if (pc != pp) return pc < pp;
    return !(parent == '+' || (parent == '*' && child == '*'));
}

typedef struct {
    char *buf;
    size_t cap, len;
    int overflow;
} text_sink;

static void sink_put(text_sink *s, const char *text, size_t n) {
    if (s->len + n >= s->cap) {
        s->overflow = 1;
        return;
    }
    memcpy(s->buf + s->len, text, n);
    s->len += n;
}

static void render_node(const expr_tree *t, int i, text_sink *s) {
    const expr_node *n = &t->node[i];
    if (!n->op) {
        char num[24];
        int k = snprintf(num, sizeof num, "%lld", (long long)n->value);
        sink_put(s, num, (size_t)k);
        return;
    }
    char left_op = t->node[n->left].op, right_op = t->node[n->right].op;
    int lp = precedence(left_op) < precedence(n->op);
    int rp = right_op && right_needs_parens(n->op, right_op);
    if (lp) sink_put(s, "(", 1);
    render_node(t, n->left, s);
    if (lp) sink_put(s, ")", 1);
    sink_put(s, &n->op, 1);
    if (rp) sink_put(s, "(", 1);
    render_node(t, n->right, s);
    if (rp) sink_put(s, ")", 1);
}

int expr_render(const expr_tree *t, int root, char *buf, size_t cap) {
    if (cap == 0) return -1;
    text_sink s = {buf, cap, 0, 0};
    render_node(t, root, &s);
    buf[s.overflow ? 0 : s.len] = 0;
    return s.overflow ? -1 : (int)s.len;
}

/* ---- parser ---- */

typedef struct {
    const char *s;
    size_t len, pos;
    int depth;
    expr_result *out;
} parser;

static void skip_space(parser *p) {
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static int peek(parser *p) {
    skip_space(p);
    return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1;
}

/* Records a semantic problem; the first one wins, and a syntax error replaces any of them. */
static void note(parser *p, expr_status st) {
    if (st == EXPR_SYNTAX || p->out->status == EXPR_OK) p->out->status = st;
}

static int64_t parse_expr(parser *p);

static int64_t parse_factor(parser *p) {
    int c = peek(p);
    if (c == '(') {
        if (++p->depth > EXPR_MAX_NESTING) {
            note(p, EXPR_SYNTAX);
            return 0;
        }
        p->pos++;
        int64_t v = parse_expr(p);
        if (p->out->status == EXPR_SYNTAX) return 0;
        if (peek(p) != ')') {
            note(p, EXPR_SYNTAX);
            return 0;
        }
        p->pos++;
        p->depth--;
        return v;
    }
    if (c < '0' || c > '9') {
        note(p, EXPR_SYNTAX);
        return 0;
    }
    int64_t v = 0;
    int digits = 0;
    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
        if (++digits <= EXPR_MAX_DIGITS) v = v * 10 + (p->s[p->pos] - '0');
        p->pos++;
    }
    if (digits > EXPR_MAX_DIGITS) note(p, EXPR_OVERFLOW);
    if (p->out->n_numbers < EXPR_MAX_NUMBERS) p->out->numbers[p->out->n_numbers] = v;
    p->out->n_numbers++;
    return v;
}

/* Folds one binary level: operand {op operand}, with ops drawn from `ops`. Once a semantic error
 * is noted the values are meaningless, but parsing goes on so a later syntax error still counts. */
static int64_t parse_level(parser *p, const char *ops, int64_t (*operand)(parser *)) {
    int64_t acc = operand(p);
    for (;;) {
        if (p->out->status == EXPR_SYNTAX) return 0;
        int c = peek(p);
        if (c != ops[0] && c != ops[1]) return acc;
        p->pos++;
        int64_t rhs = operand(p);
        if (p->out->status != EXPR_OK) continue;
        expr_status st = expr_apply((char)c, acc, rhs, &acc);
        if (st != EXPR_OK) note(p, st);
    }
}

static int64_t parse_term(parser *p) { return parse_level(p, "*/", parse_factor); }
static int64_t parse_expr(parser *p) { return parse_level(p, "+-", parse_term); }

void expr_parse(const char *s, size_t len, expr_result *out) {
    memset(out, 0, sizeof *out);
    parser p = {s, len, 0, 0, out};
    int64_t v = parse_expr(&p);
    if (out->status != EXPR_SYNTAX && peek(&p) != -1) note(&p, EXPR_SYNTAX);
    out->value = out->status == EXPR_OK ? v : 0;
}
