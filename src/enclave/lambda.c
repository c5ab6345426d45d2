/* lambda.c: the Lua 5.4 lambda sandbox (see lambda.h, DESIGN §7.2, docs/lambda-api.md).
 * Each run builds a fresh lua_State on an allocator that enforces the memory cap, opens only
 * base, table, string, math and utf8, removes or wraps every function that reaches outside the
 * state or can loop without running Lua instructions, runs the script under a count hook that
 * enforces the instruction budget, and encodes main's value as JSON with raw table access only.
 * The invariant: no Lua error escapes a protected call (the panic handler is a PSL_ASSERT), no
 * script code runs with hooks off (finalizers are refused; xpcall handlers are skipped for the
 * budget error, which is raised inside the hook), and every malloc'd byte handed
 * between ops and Lua is freed on every path, including a longjmp out of a Lua error. */
#include "enclave/lambda.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "base/assert.h"

#define HOOK_STEP            10000             /* instructions between two budget checks */
#define ALLOC_BYTES_PER_INSN 8u                /* allocated bytes charged as one instruction */
#define BARRIER_SLEEP_MS_MAX 20u               /* polling backoff: 1, 2, 4, ... up to this */
#define WHERE_SIZE           (LUA_IDSIZE + 24) /* "name:line: " */
#define RESERVED_PREFIX      "\0psl/"          /* keys the runtime writes (barriers) */
#define RESERVED_PREFIX_SIZE 5u
#define BARRIER_PREFIX       "\0psl/barrier/"
#define BARRIER_PREFIX_SIZE  13u
/* prefix, job id in hex and '/', name, "/<round u64>/<worker u32>" */
#define BARRIER_KEY_SIZE_MAX                                                                       \
    (BARRIER_PREFIX_SIZE + 2u * LAMBDA_JOB_ID_SIZE_MAX + 1u + PSL_BARRIER_NAME_SIZE_MAX + 33u)

_Static_assert(BARRIER_KEY_SIZE_MAX <= PSL_KEY_SIZE_MAX, "barrier keys fit the key limit");
/* NOLINTNEXTLINE(misc-redundant-expression): LUA_EXTRASPACE is sizeof(void *) in stock Lua */
_Static_assert(LUA_EXTRASPACE >= sizeof(void *), "the run pointer lives in the extra space");

/* Everything one run owns. Lives on lambda_run's stack; Lua reaches it through the state's
 * extra space (run_of) and the allocator through its ud pointer. */
struct run {
    const struct lambda_job *job;
    const struct lambda_ops *ops;
    char chunk[LUA_IDSIZE + 1]; /* "=" + name: Lua shows it verbatim */
    char name[LUA_IDSIZE];      /* the name as Lua's messages show it (short_src) */
    /* Set while the state may be inspected from the allocator (not during newstate/close). */
    lua_State *L;

    size_t mem_max;
    size_t mem_used;            /* bytes Lua holds, as Lua counts them */
    bool mem_refused;           /* the allocator refused growth past mem_max at least once */
    bool host_nomem;            /* malloc failed below the cap */
    char mem_where[WHERE_SIZE]; /* script position of the last refusal, "" if unknown */

    uint64_t insn_max;
    uint64_t insn_used; /* <= insn_max */
    int hook_count;     /* instructions between the last hook and the next */
    bool charging;      /* allocations are charged once the script starts loading */
    bool exhausted;     /* sticky: the hook then fires on every instruction and raises */
    char budget_msg[WHERE_SIZE + 64];

    char *out; /* the JSON result being built (malloc'd), NUL-terminated */
    size_t out_len, out_cap;
    const void *path[LAMBDA_RESULT_DEPTH_MAX]; /* tables being encoded, for cycle detection */

    /* A value from ops->get on its way into Lua: freed by lambda_run if Lua raises meanwhile. */
    uint8_t *pending;
};

static struct run *run_of(lua_State *L)
{
    return *(struct run **)lua_getextraspace(L);
}

/* Raises a Lua error: lua_error does not return (it unwinds to the protected call). */
static _Noreturn void raisef(lua_State *L, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_error(L);
    abort(); /* unreachable */
}

/* Writes "src:line: " of the innermost Lua function at or above stack level `level`, or "". */
static void where_lua(lua_State *L, int level, char *buf, size_t cap)
{
    lua_Debug ar;
    buf[0] = '\0';
    for (int l = level; lua_getstack(L, l, &ar); l++) {
        if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
            snprintf(buf, cap, "%s:%d: ", ar.short_src, ar.currentline);
            return;
        }
    }
}

/* ---- instruction budget ---- */

static void budget_hook(lua_State *L, lua_Debug *ar);

static void budget_mark_exhausted(struct run *r)
{
    r->insn_used = r->insn_max;
    if (r->exhausted)
        return;
    r->exhausted = true;
    /* From now on every instruction raises, so a script that catches the error with pcall
     * cannot continue. lua_sethook only stores fields and is safe from the allocator. */
    if (r->L) {
        r->hook_count = 1;
        lua_sethook(r->L, budget_hook, LUA_MASKCOUNT, 1);
    }
}

static int budget_raise(lua_State *L, struct run *r, const char *where)
{
    budget_mark_exhausted(r);
    if (!r->budget_msg[0])
        snprintf(r->budget_msg, sizeof r->budget_msg,
                 "%sinstruction budget of %" PRIu64 " exhausted", where, r->insn_max);
    lua_pushstring(L, r->budget_msg);
    return lua_error(L);
}

/* The count hook: charges the instructions run since the last call. */
static void budget_hook(lua_State *L, lua_Debug *ar)
{
    struct run *r = run_of(L);
    if (!r->exhausted) {
        uint64_t step = (uint64_t)r->hook_count;
        if (step < r->insn_max - r->insn_used) {
            r->insn_used += step;
            uint64_t left = r->insn_max - r->insn_used;
            int next = left < HOOK_STEP ? (int)left : HOOK_STEP; /* stop exactly at insn_max */
            if (next != r->hook_count) {
                r->hook_count = next;
                lua_sethook(L, budget_hook, LUA_MASKCOUNT, next);
            }
            return;
        }
    }
    char where[WHERE_SIZE] = "";
    if (lua_getinfo(L, "Sl", ar) && ar->currentline > 0)
        snprintf(where, sizeof where, "%s:%d: ", ar->short_src, ar->currentline);
    budget_raise(L, r, where);
}

/* Charges work done inside a library call (C code runs no Lua instructions); raises when the
 * budget runs out, naming the calling script line. */
static void budget_charge(lua_State *L, struct run *r, uint64_t units)
{
    if (!r->exhausted && units < r->insn_max - r->insn_used) {
        r->insn_used += units;
        return;
    }
    char where[WHERE_SIZE];
    where_lua(L, 1, where, sizeof where);
    budget_raise(L, r, where);
}

/* ---- memory cap ---- */

/* Records where a refused allocation came from. lua_getstack/lua_getinfo("Sl") only read the
 * CallInfo list and the running function's prototype, which are consistent at every allocation
 * in Lua 5.4.4 (the stack grows into a new block before the old one is released). Later 5.4
 * releases turn stack pointers into offsets while the stack block itself is reallocated (a
 * call with ptr != NULL), so there only new blocks are located. */
static void mem_note_refusal(struct run *r, const void *ptr)
{
    r->mem_refused = true;
    r->mem_where[0] = '\0';
#if LUA_VERSION_RELEASE_NUM > 50404
    if (ptr)
        return;
#else
    (void)ptr;
#endif
    if (r->L)
        where_lua(r->L, 0, r->mem_where, sizeof r->mem_where);
}

static void *run_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct run *r = ud;
    size_t old = ptr ? osize : 0; /* with ptr NULL, osize is a type tag */
    if (nsize == 0) {
        PSL_ASSERT(old <= r->mem_used);
        r->mem_used -= old;
        free(ptr);
        return NULL;
    }
    if (nsize > old && nsize - old > r->mem_max - r->mem_used) {
        mem_note_refusal(r, ptr); /* Lua collects garbage, retries, then raises */
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (!p) {
        if (nsize <= old) /* Lua assumes shrinking never fails: keep the bigger block */
            p = ptr;
        else {
            r->host_nomem = true;
            return NULL;
        }
    }
    PSL_ASSERT(old <= r->mem_used);
    r->mem_used = r->mem_used - old + nsize;
    if (nsize > old && r->charging && !r->exhausted) {
        uint64_t units = (uint64_t)(nsize - old) / ALLOC_BYTES_PER_INSN;
        if (units < r->insn_max - r->insn_used)
            r->insn_used += units;
        else
            budget_mark_exhausted(r); /* the hook raises at the next instruction */
    }
    return p;
}

static int run_panic(lua_State *L)
{
    (void)L;
    psl_assert_fail("Lua error outside a protected call", __FILE__, __LINE__);
}

/* ---- the sandboxed standard library ---- */

/* Calls the original function (upvalue 1) with this call's arguments. The wrappers check the
 * arguments first, so that the original raises no argument error of its own: one raised from
 * here would name neither the function ('?') nor the script line. */
static int call_orig(lua_State *L)
{
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    return lua_gettop(L);
}

/* load(chunk [, chunkname [, mode [, env]]]): always text mode; env defaults to the sandbox's
 * own globals, the only environment a script can name anyway. */
static int sb_load(lua_State *L)
{
    int n = lua_gettop(L);
    int t = lua_type(L, 1);
    if (t != LUA_TSTRING && t != LUA_TNUMBER && t != LUA_TFUNCTION)
        return luaL_typeerror(L, 1, "string or function");
    luaL_optstring(L, 2, NULL);
    luaL_optstring(L, 3, NULL);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 1);
    if (n >= 2)
        lua_pushvalue(L, 2);
    else
        lua_pushnil(L);
    lua_pushliteral(L, "t");
    int nargs = 3;
    if (n >= 4) { /* an explicit env, even nil, is the caller's choice */
        lua_pushvalue(L, 4);
        nargs = 4;
    }
    lua_call(L, nargs, LUA_MULTRET); /* load errors are results, not raised */
    return lua_gettop(L) - n;
}

/* The budget error is raised inside the count hook, where Lua has hooks off; the message
 * handler of an enclosing xpcall runs right there, before the stack unwinds, so a script's
 * handler would run unmetered. After exhaustion the error therefore passes by the script's
 * handler unchanged (the script is ending anyway); other errors reach it as usual. */
static int sb_xpcall_msgh(lua_State *L)
{
    if (run_of(L)->exhausted)
        return 1;
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static int sb_xpcall(lua_State *L)
{
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, sb_xpcall_msgh, 1);
    lua_replace(L, 2);
    return call_orig(L);
}

/* setmetatable as in lbaselib.c, refusing __gc: finalizers run with hooks off (lgc.c GCTM), so
 * a looping __gc would escape the budget. An object is marked for finalization only when its
 * metatable has __gc at the time of setmetatable; a field added later is ignored by Lua. */
static int sb_setmetatable(lua_State *L)
{
    int t = lua_type(L, 2);
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    if (t == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        int gc = lua_rawget(L, 2);
        lua_pop(L, 1);
        if (gc != LUA_TNIL)
            return luaL_error(L, "setmetatable: __gc metamethods are not available in the sandbox");
    }
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
        return luaL_error(L, "cannot change a protected metatable");
    lua_settop(L, 2);
    lua_setmetatable(L, 1);
    return 1;
}

/* collectgarbage with the options that neither change the collector's parameters nor stop it
 * (lbaselib.c semantics). A cycle or step is C work proportional to the heap: charged. */
static int sb_collectgarbage(lua_State *L)
{
    struct run *r = run_of(L);
    const char *opt = luaL_optstring(L, 1, "collect");
    if (strcmp(opt, "collect") == 0) {
        budget_charge(L, r, (uint64_t)r->mem_used / ALLOC_BYTES_PER_INSN);
        lua_pushinteger(L, lua_gc(L, LUA_GCCOLLECT));
    } else if (strcmp(opt, "step") == 0) {
        int step = (int)luaL_optinteger(L, 2, 0);
        budget_charge(L, r, (uint64_t)r->mem_used / ALLOC_BYTES_PER_INSN);
        lua_pushboolean(L, lua_gc(L, LUA_GCSTEP, step));
    } else if (strcmp(opt, "count") == 0) {
        int k = lua_gc(L, LUA_GCCOUNT), b = lua_gc(L, LUA_GCCOUNTB);
        lua_pushnumber(L, (lua_Number)k + (lua_Number)b / 1024);
    } else if (strcmp(opt, "isrunning") == 0) {
        lua_pushboolean(L, lua_gc(L, LUA_GCISRUNNING));
    } else {
        return luaL_error(L, "collectgarbage: option '%s' is not available in the sandbox", opt);
    }
    return 1;
}

/* string.rep of empty pieces loops n times in C without allocating: answer it directly. */
static int sb_rep(lua_State *L)
{
    size_t l, lsep;
    luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &lsep);
    if (n <= 0 || (l == 0 && lsep == 0)) {
        lua_pushliteral(L, "");
        return 1;
    }
    if (l + lsep < l || l + lsep > (size_t)INT_MAX / (size_t)n) /* lstrlib.c's MAXSIZE */
        return luaL_error(L, "resulting string too large");
    return call_orig(L); /* output >= n bytes: bounded and charged by the allocator */
}

/* True when an error message starts with a position ("src:12: "). */
static bool has_position(const char *m)
{
    const char *c = strchr(m, ':');
    if (!c || c[1] < '0' || c[1] > '9')
        return false;
    c++;
    while (*c >= '0' && *c <= '9')
        c++;
    return *c == ':';
}

/* table.insert, remove, move and concat follow ltablib.c of Lua 5.4 (MIT licence), with one
 * budget unit per element visited: their loops run in C and, through __len or explicit
 * ranges, can be made arbitrarily long. Only real tables are accepted (the sandbox exposes no
 * userdata). */
static int tb_insert(lua_State *L)
{
    struct run *r = run_of(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer e = (lua_Integer)((lua_Unsigned)luaL_len(L, 1) + 1u); /* first empty element */
    lua_Integer pos;
    switch (lua_gettop(L)) {
    case 2:
        pos = e;
        break;
    case 3:
        pos = luaL_checkinteger(L, 2);
        luaL_argcheck(L, (lua_Unsigned)pos - 1u < (lua_Unsigned)e, 2, "position out of bounds");
        for (lua_Integer i = e; i > pos; i--) {
            budget_charge(L, r, 1);
            lua_geti(L, 1, i - 1);
            lua_seti(L, 1, i);
        }
        break;
    default:
        return luaL_error(L, "wrong number of arguments to 'insert'");
    }
    lua_seti(L, 1, pos);
    return 0;
}

static int tb_remove(lua_State *L)
{
    struct run *r = run_of(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer size = luaL_len(L, 1);
    lua_Integer pos = luaL_optinteger(L, 2, size);
    if (pos != size)
        luaL_argcheck(L, (lua_Unsigned)pos - 1u <= (lua_Unsigned)size, 2, "position out of bounds");
    lua_geti(L, 1, pos);
    for (; pos < size; pos++) {
        budget_charge(L, r, 1);
        lua_geti(L, 1, pos + 1);
        lua_seti(L, 1, pos);
    }
    lua_pushnil(L);
    lua_seti(L, 1, pos);
    return 1;
}

static int tb_move(lua_State *L)
{
    struct run *r = run_of(L);
    lua_Integer f = luaL_checkinteger(L, 2);
    lua_Integer e = luaL_checkinteger(L, 3);
    lua_Integer t = luaL_checkinteger(L, 4);
    int tt = !lua_isnoneornil(L, 5) ? 5 : 1; /* destination table */
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, tt, LUA_TTABLE);
    if (e >= f) {
        luaL_argcheck(L, f > 0 || e < LUA_MAXINTEGER + f, 3, "too many elements to move");
        lua_Integer n = e - f + 1;
        luaL_argcheck(L, t <= LUA_MAXINTEGER - n + 1, 4, "destination wrap around");
        if (t > e || t <= f || (tt != 1 && !lua_rawequal(L, 1, tt))) {
            for (lua_Integer i = 0; i < n; i++) {
                budget_charge(L, r, 1);
                lua_geti(L, 1, f + i);
                lua_seti(L, tt, t + i);
            }
        } else {
            for (lua_Integer i = n - 1; i >= 0; i--) {
                budget_charge(L, r, 1);
                lua_geti(L, 1, f + i);
                lua_seti(L, tt, t + i);
            }
        }
    }
    lua_pushvalue(L, tt);
    return 1;
}

static void concat_field(lua_State *L, luaL_Buffer *b, lua_Integer i)
{
    lua_geti(L, 1, i);
    if (!lua_isstring(L, -1))
        luaL_error(L, "invalid value (at index %I) in table for 'concat'", (LUAI_UACINT)i);
    luaL_addvalue(b);
}

static int tb_concat(lua_State *L)
{
    struct run *r = run_of(L);
    luaL_Buffer b;
    size_t lsep;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer last = luaL_len(L, 1);
    const char *sep = luaL_optlstring(L, 2, "", &lsep);
    lua_Integer i = luaL_optinteger(L, 3, 1);
    last = luaL_optinteger(L, 4, last);
    luaL_buffinit(L, &b);
    for (; i < last; i++) {
        budget_charge(L, r, 1);
        concat_field(L, &b, i);
        luaL_addlstring(&b, sep, lsep);
    }
    if (i == last)
        concat_field(L, &b, i);
    luaL_pushresult(&b);
    return 1;
}

/* table.sort reads the length once (a __len that answers differently the second time cannot
 * stretch the work), sorts a plain copy with Lua's own quicksort, charged n*log2(n), and
 * writes the elements back. Holes are an error, as comparing nil would be. */
static int tb_sort(lua_State *L)
{
    struct run *r = run_of(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 1);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_settop(L, 2);
    if (n <= 1)
        return 0;
    luaL_argcheck(L, n < INT_MAX, 1, "array too big");
    lua_createtable(L, (int)n, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        budget_charge(L, r, 1);
        if (lua_geti(L, 1, i) == LUA_TNIL)
            return luaL_error(L, "invalid value (at index %I) in table for 'sort'", (LUAI_UACINT)i);
        lua_rawseti(L, 3, i);
    }
    uint64_t log2n = 0;
    while (((uint64_t)1 << log2n) < (uint64_t)n)
        log2n++;
    budget_charge(L, r, (uint64_t)n * log2n);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 3);
    lua_pushvalue(L, 2);
    int st = lua_pcall(L, 2, 0, 0);
    if (st != LUA_OK) { /* errors of the original ("attempt to compare ...") have no position */
        if (st == LUA_ERRRUN && !r->exhausted && lua_type(L, -1) == LUA_TSTRING &&
            !has_position(lua_tostring(L, -1))) {
            char where[WHERE_SIZE];
            where_lua(L, 1, where, sizeof where);
            lua_pushfstring(L, "%s%s", where, lua_tostring(L, -1));
        }
        return lua_error(L);
    }
    for (lua_Integer i = 1; i <= n; i++) {
        budget_charge(L, r, 1);
        lua_rawgeti(L, 3, i);
        lua_seti(L, 1, i);
    }
    return 0;
}

/* ---- the psl module ---- */

static const uint8_t *check_key(lua_State *L, int arg, const char *fn, size_t *size)
{
    if (lua_type(L, arg) != LUA_TSTRING)
        luaL_error(L, "psl.%s: key must be a string (got %s)", fn, luaL_typename(L, arg));
    const char *k = lua_tolstring(L, arg, size);
    if (*size > PSL_KEY_SIZE_MAX)
        luaL_error(L, "psl.%s: key of %I bytes exceeds the limit of %I bytes (PSL_KEY_SIZE_MAX)",
                   fn, (LUAI_UACINT)*size, (LUAI_UACINT)PSL_KEY_SIZE_MAX);
    return (const uint8_t *)k;
}

static void check_writable(lua_State *L, const char *fn, const uint8_t *key, size_t size)
{
    if (size >= RESERVED_PREFIX_SIZE && memcmp(key, RESERVED_PREFIX, RESERVED_PREFIX_SIZE) == 0)
        luaL_error(L, "psl.%s: keys starting with \"\\0psl/\" are reserved for the runtime", fn);
}

static int psl_get(lua_State *L)
{
    struct run *r = run_of(L);
    size_t ks;
    const uint8_t *k = check_key(L, 1, "get", &ks);
    free(r->pending); /* left by a get whose push raised and was caught by pcall */
    r->pending = NULL;
    uint8_t *v = NULL;
    size_t vs = 0;
    psl_err e = r->ops->get(r->ops->ctx, k, ks, &v, &vs);
    if (e == PSL_ERR_NOT_FOUND) {
        lua_pushnil(L);
        return 1;
    }
    if (e)
        return luaL_error(L, "psl.get failed: %s", psl_strerror(e));
    r->pending = v;
    lua_pushlstring(L, v ? (const char *)v : "", vs);
    r->pending = NULL;
    free(v);
    return 1;
}

static int psl_put(lua_State *L)
{
    struct run *r = run_of(L);
    size_t ks, vs;
    const uint8_t *k = check_key(L, 1, "put", &ks);
    check_writable(L, "put", k, ks);
    int vt = lua_type(L, 2);
    if (vt != LUA_TSTRING && vt != LUA_TNUMBER)
        return luaL_error(L, "psl.put: value must be a string or a number (got %s)",
                          luaL_typename(L, 2));
    const char *v = lua_tolstring(L, 2, &vs); /* numbers: Lua's tostring form */
    if (vs > PSL_VALUE_SIZE_MAX)
        return luaL_error(L,
                          "psl.put: value of %I bytes exceeds the limit of %I bytes "
                          "(PSL_VALUE_SIZE_MAX)",
                          (LUAI_UACINT)vs, (LUAI_UACINT)PSL_VALUE_SIZE_MAX);
    psl_err e = r->ops->put(r->ops->ctx, k, ks, (const uint8_t *)v, vs);
    if (e)
        return luaL_error(L, "psl.put failed: %s", psl_strerror(e));
    return 0;
}

static int psl_del(lua_State *L)
{
    struct run *r = run_of(L);
    size_t ks;
    const uint8_t *k = check_key(L, 1, "del", &ks);
    check_writable(L, "del", k, ks);
    psl_err e = r->ops->del(r->ops->ctx, k, ks);
    if (e && e != PSL_ERR_NOT_FOUND)
        return luaL_error(L, "psl.del failed: %s", psl_strerror(e));
    return 0;
}

static int psl_flush(lua_State *L)
{
    struct run *r = run_of(L);
    psl_err e = r->ops->flush(r->ops->ctx);
    if (e)
        return luaL_error(L, "psl.flush failed: %s", psl_strerror(e));
    return 0;
}

static int psl_worker(lua_State *L)
{
    struct run *r = run_of(L);
    lua_pushinteger(L, (lua_Integer)r->job->worker);
    lua_pushinteger(L, (lua_Integer)r->job->workers);
    return 2;
}

static int psl_sleep(lua_State *L)
{
    struct run *r = run_of(L);
    lua_Integer ms = luaL_checkinteger(L, 1);
    luaL_argcheck(L, ms >= 0 && ms <= (lua_Integer)UINT32_MAX, 1, "milliseconds not in 0..2^32-1");
    r->ops->sleep_ms(r->ops->ctx, (uint32_t)ms);
    return 0;
}

/* print and psl.log: arguments through tostring, tab-separated, cut at PSL_LOG_LINE_SIZE_MAX.
 * The line buffer is a userdata, so nested calls (a __tostring that prints) each have theirs. */
static int psl_log(lua_State *L)
{
    struct run *r = run_of(L);
    int n = lua_gettop(L);
    char *line = lua_newuserdatauv(L, PSL_LOG_LINE_SIZE_MAX + 1u, 0);
    size_t len = 0;
    for (int i = 1; i <= n; i++) {
        size_t l;
        const char *s = luaL_tolstring(L, i, &l);
        if (i > 1 && len < PSL_LOG_LINE_SIZE_MAX)
            line[len++] = '\t';
        size_t k = l < PSL_LOG_LINE_SIZE_MAX - len ? l : PSL_LOG_LINE_SIZE_MAX - len;
        memcpy(line + len, s, k);
        len += k;
        lua_pop(L, 1);
    }
    line[len] = '\0';
    r->ops->log(r->ops->ctx, line, len);
    return 0;
}

/* "\0psl/barrier/[<job id hex>/]<name>/<round>/<worker>": round and worker are always the last
 * two components, so names containing '/' cannot collide. */
static size_t barrier_key(const struct run *r, const char *name, size_t name_size, uint64_t round,
                          uint32_t worker, uint8_t out[BARRIER_KEY_SIZE_MAX])
{
    static const char hex[] = "0123456789abcdef";
    size_t n = BARRIER_PREFIX_SIZE;
    memcpy(out, BARRIER_PREFIX, BARRIER_PREFIX_SIZE);
    if (r->job->job_id_size) {
        for (size_t i = 0; i < r->job->job_id_size; i++) {
            out[n++] = (uint8_t)hex[r->job->job_id[i] >> 4];
            out[n++] = (uint8_t)hex[r->job->job_id[i] & 15];
        }
        out[n++] = '/';
    }
    memcpy(out + n, name, name_size);
    n += name_size;
    int w =
        snprintf((char *)out + n, BARRIER_KEY_SIZE_MAX - n, "/%" PRIu64 "/%" PRIu32, round, worker);
    PSL_ASSERT(w > 0 && (size_t)w < BARRIER_KEY_SIZE_MAX - n);
    return n + (size_t)w;
}

/* psl.barrier(name): announce this worker's arrival at round k of `name` (a key), then poll
 * until every worker's key for round k is visible and every record seen so far is applied
 * without a gap (ops->caught_up: what a worker wrote before the barrier is visible after it). Passing round k proves every worker put
 * its round-k key, hence finished polling round k-1: this worker's round-(k-1) key is no
 * longer read by anyone and is deleted. Upvalue 1: name -> next round, for this run. */
static int psl_barrier(lua_State *L)
{
    struct run *r = run_of(L);
    if (lua_type(L, 1) != LUA_TSTRING)
        return luaL_error(L, "psl.barrier: name must be a string (got %s)", luaL_typename(L, 1));
    size_t name_size;
    const char *name = lua_tolstring(L, 1, &name_size);
    if (name_size == 0 || name_size > PSL_BARRIER_NAME_SIZE_MAX)
        return luaL_error(L,
                          "psl.barrier: name must have 1 to %I bytes (PSL_BARRIER_NAME_SIZE_MAX)",
                          (LUAI_UACINT)PSL_BARRIER_NAME_SIZE_MAX);
    lua_settop(L, 1);
    lua_pushvalue(L, 1);
    lua_rawget(L, lua_upvalueindex(1));
    uint64_t round = (uint64_t)lua_tointeger(L, -1); /* nil: 0 */
    lua_pop(L, 1);
    uint32_t self = r->job->worker, workers = r->job->workers;
    if (workers == 1)
        return 0;
    uint8_t key[BARRIER_KEY_SIZE_MAX];
    size_t ks = barrier_key(r, name, name_size, round, self, key);
    psl_err e = r->ops->put(r->ops->ctx, key, ks, (const uint8_t *)"1", 1);
    if (e)
        return luaL_error(L, "psl.barrier failed: %s", psl_strerror(e));

    uint8_t *seen = lua_newuserdatauv(L, workers, 0);
    memset(seen, 0, workers);
    seen[self] = 1;
    uint32_t missing = workers - 1;
    uint32_t sleep_ms = 1;
    for (;;) {
        for (uint32_t w = 0; w < workers && missing; w++) {
            if (seen[w])
                continue;
            ks = barrier_key(r, name, name_size, round, w, key);
            uint8_t *v = NULL;
            size_t vs = 0;
            e = r->ops->get(r->ops->ctx, key, ks, &v, &vs);
            if (e == PSL_ERR_NOT_FOUND)
                continue;
            if (e)
                return luaL_error(L, "psl.barrier failed: %s", psl_strerror(e));
            free(v);
            seen[w] = 1;
            missing--;
        }
        if (!missing && (!r->ops->caught_up || r->ops->caught_up(r->ops->ctx)))
            break;
        r->ops->sleep_ms(r->ops->ctx, sleep_ms);
        if (sleep_ms < BARRIER_SLEEP_MS_MAX)
            sleep_ms = sleep_ms * 2 < BARRIER_SLEEP_MS_MAX ? sleep_ms * 2 : BARRIER_SLEEP_MS_MAX;
    }
    /* Passed: the next call with this name is the next round. Counted only now, so a script
     * that catches a failed barrier and calls it again retries the same round. */
    lua_pushvalue(L, 1);
    lua_pushinteger(L, (lua_Integer)round + 1);
    lua_rawset(L, lua_upvalueindex(1));
    if (round > 0) {
        ks = barrier_key(r, name, name_size, round - 1, self, key);
        e = r->ops->del(r->ops->ctx, key, ks);
        if (e && e != PSL_ERR_NOT_FOUND)
            return luaL_error(L, "psl.barrier failed: %s", psl_strerror(e));
    }
    return 0;
}

/* Replaces t[name] (t at index t) by a closure of fn over the original value. */
static void wrap_field(lua_State *L, int t, const char *name, lua_CFunction fn)
{
    lua_getfield(L, t, name);
    lua_pushcclosure(L, fn, 1);
    lua_setfield(L, t, name);
}

static void set_field_fn(lua_State *L, int t, const char *name, lua_CFunction fn)
{
    lua_pushcfunction(L, fn);
    lua_setfield(L, t, name);
}

static void sandbox_open(lua_State *L)
{
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base},        {LUA_TABLIBNAME, luaopen_table},
        {LUA_STRLIBNAME, luaopen_string}, {LUA_MATHLIBNAME, luaopen_math},
        {LUA_UTF8LIBNAME, luaopen_utf8},
    };
    for (size_t i = 0; i < sizeof libs / sizeof libs[0]; i++) {
        luaL_requiref(L, libs[i].name, libs[i].func, 1);
        lua_pop(L, 1);
    }
    lua_pushglobaltable(L);
    int g = lua_gettop(L);
    /* Files and the host's stderr: gone (require is absent without package; warn would write
     * through a warning function this state does not have). */
    static const char *const removed[] = {"dofile", "loadfile", "require", "warn"};
    for (size_t i = 0; i < sizeof removed / sizeof removed[0]; i++) {
        lua_pushnil(L);
        lua_setfield(L, g, removed[i]);
    }
    wrap_field(L, g, "load", sb_load);
    wrap_field(L, g, "xpcall", sb_xpcall);
    set_field_fn(L, g, "setmetatable", sb_setmetatable);
    set_field_fn(L, g, "collectgarbage", sb_collectgarbage);
    set_field_fn(L, g, "print", psl_log);

    lua_getfield(L, g, LUA_STRLIBNAME);
    int s = lua_gettop(L);
    lua_pushnil(L);
    lua_setfield(L, s, "dump"); /* binary chunks are refused; nothing makes them */
    wrap_field(L, s, "rep", sb_rep);
    lua_pop(L, 1);
    /* The string metatable is shared by all strings; hide it (getmetatable("") is false), so a
     * script cannot redirect string methods behind the runtime's back. */
    lua_pushliteral(L, "");
    if (lua_getmetatable(L, -1)) {
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");
        lua_pop(L, 1);
    }
    lua_pop(L, 1);

    lua_getfield(L, g, LUA_TABLIBNAME);
    int t = lua_gettop(L);
    set_field_fn(L, t, "insert", tb_insert);
    set_field_fn(L, t, "remove", tb_remove);
    set_field_fn(L, t, "move", tb_move);
    set_field_fn(L, t, "concat", tb_concat);
    wrap_field(L, t, "sort", tb_sort);
    lua_pop(L, 1);

    static const luaL_Reg psl_funcs[] = {
        {"get", psl_get},       {"put", psl_put},     {"del", psl_del}, {"flush", psl_flush},
        {"worker", psl_worker}, {"sleep", psl_sleep}, {"log", psl_log}, {NULL, NULL},
    };
    luaL_newlib(L, psl_funcs);
    lua_newtable(L); /* barrier rounds per name */
    lua_pushcclosure(L, psl_barrier, 1);
    lua_setfield(L, -2, "barrier");
    lua_setfield(L, g, "psl");
    lua_pop(L, 1);
}

/* ---- the result: JSON text ---- */

static void out_put(lua_State *L, struct run *r, const char *s, size_t n)
{
    if (n > PSL_RESULT_SIZE_MAX - r->out_len)
        raisef(L, "%s: result: JSON text exceeds %I bytes (PSL_RESULT_SIZE_MAX)", r->name,
               (LUAI_UACINT)PSL_RESULT_SIZE_MAX);
    if (n + 1 > r->out_cap - r->out_len) {
        size_t cap = r->out_cap ? r->out_cap : 256;
        while (cap - r->out_len < n + 1)
            cap *= 2;
        if (cap > PSL_RESULT_SIZE_MAX + 1u)
            cap = PSL_RESULT_SIZE_MAX + 1u;
        char *p = realloc(r->out, cap);
        if (!p) {
            r->host_nomem = true;
            raisef(L, "%s: result: out of memory", r->name);
        }
        r->out = p;
        r->out_cap = cap;
    }
    if (n)
        memcpy(r->out + r->out_len, s, n);
    r->out_len += n;
    r->out[r->out_len] = '\0';
}

/* Length of the well-formed UTF-8 sequence at s (n > 0 bytes available), 0 if none starts
 * there (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0], lo = 0x80, hi = 0xBF;
    size_t len;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        lo = c == 0xE0 ? 0xA0 : lo;
        hi = c == 0xED ? 0x9F : hi;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        lo = c == 0xF0 ? 0x90 : lo;
        hi = c == 0xF4 ? 0x8F : hi;
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return len;
}

static bool utf8_valid(const char *s, size_t n)
{
    for (size_t i = 0, len; i < n; i += len)
        if (!(len = utf8_seq((const unsigned char *)s + i, n - i)))
            return false;
    return true;
}

#define REPLACEMENT_CHAR "\xEF\xBF\xBD" /* U+FFFD */

/* Pushes s with every byte that is not part of a well-formed sequence replaced by U+FFFD. */
static const char *utf8_fix(lua_State *L, const char *s, size_t n, size_t *out_size)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0, len; i < n; i += len) {
        len = utf8_seq((const unsigned char *)s + i, n - i);
        if (len)
            luaL_addlstring(&b, s + i, len);
        else {
            luaL_addlstring(&b, REPLACEMENT_CHAR, 3);
            len = 1;
        }
    }
    luaL_pushresult(&b);
    return lua_tolstring(L, -1, out_size);
}

static void enc_string(lua_State *L, struct run *r, const char *s, size_t n)
{
    out_put(L, r, "\"", 1);
    size_t start = 0, i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        size_t len = 0;
        if (c >= 0x80 && (len = utf8_seq((const unsigned char *)s + i, n - i)) != 0) {
            i += len;
            continue;
        }
        out_put(L, r, s + start, i - start);
        char u[8];
        const char *esc = u;
        switch (c) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\f':
            esc = "\\f";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        default:
            if (c >= 0x80)
                esc = REPLACEMENT_CHAR;
            else
                snprintf(u, sizeof u, "\\u%04x", c);
        }
        out_put(L, r, esc, strlen(esc));
        start = ++i;
    }
    out_put(L, r, s + start, n - start);
    out_put(L, r, "\"", 1);
}

static void enc_number(lua_State *L, struct run *r, int idx)
{
    char buf[64];
    if (lua_isinteger(L, idx)) {
        snprintf(buf, sizeof buf, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
    } else {
        double v = (double)lua_tonumber(L, idx);
        if (!isfinite(v))
            raisef(L, "%s: result: cannot encode %s (JSON has no NaN or infinity)", r->name,
                   isnan(v) ? "nan"
                   : v > 0  ? "inf"
                            : "-inf");
        /* The shortest of 15, 16, 17 significant digits that reads back as the same double. */
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(buf, sizeof buf, "%.*g", prec, v);
            if (strtod(buf, NULL) == v)
                break;
        }
        if (strspn(buf, "-0123456789") == strlen(buf)) /* keep floats floats: 3.0, not 3 */
            strcat(buf, ".0");
    }
    out_put(L, r, buf, strlen(buf));
}

struct jkey {
    const char *s; /* the key's text as valid UTF-8, anchored in the encoder's anchor table */
    size_t len;
    int slot; /* anchor[slot] is the original key */
};

static int jkey_cmp(const void *a, const void *b)
{
    const struct jkey *x = a, *y = b;
    int c = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);
    if (c)
        return c;
    return (x->len > y->len) - (x->len < y->len);
}

static void enc_value(lua_State *L, struct run *r, int idx, unsigned depth);

static void enc_array(lua_State *L, struct run *r, int idx, lua_Integer n, unsigned depth)
{
    out_put(L, r, "[", 1);
    for (lua_Integer i = 1; i <= n; i++) {
        if (i > 1)
            out_put(L, r, ",", 1);
        lua_rawgeti(L, idx, i);
        enc_value(L, r, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }
    out_put(L, r, "]", 1);
}

static void enc_object(lua_State *L, struct run *r, int idx, size_t count, unsigned depth)
{
    int n = (int)count; /* count <= PSL_RESULT_SIZE_MAX / 2 */
    struct jkey *keys = lua_newuserdatauv(L, count * sizeof *keys, 0);
    lua_createtable(L, n, 0);
    int anchor = lua_gettop(L);
    int i = 0, extra = n; /* anchor[1..n]: the keys; anchor[n+1..]: text made for them */
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        PSL_ASSERT(i < n); /* no Lua code runs while encoding, so the table cannot grow */
        i++;
        lua_pushvalue(L, -1);
        lua_rawseti(L, anchor, i);
        size_t len;
        const char *s;
        int kt = lua_type(L, -1);
        if (kt == LUA_TSTRING) {
            s = lua_tolstring(L, -1, &len);
        } else if (kt == LUA_TNUMBER) {
            lua_pushvalue(L, -1);
            s = lua_tolstring(L, -1, &len); /* converts the copy, not the traversal key */
            lua_rawseti(L, anchor, ++extra);
        } else {
            raisef(L, "%s: result: a %s cannot be a JSON object key", r->name, lua_typename(L, kt));
            return;
        }
        if (!utf8_valid(s, len)) {
            s = utf8_fix(L, s, len, &len);
            lua_rawseti(L, anchor, ++extra);
        }
        keys[i - 1] = (struct jkey){.s = s, .len = len, .slot = i};
    }
    count = (size_t)i; /* entries of a weak table may have been collected meanwhile */
    qsort(keys, count, sizeof *keys, jkey_cmp);
    for (size_t j = 1; j < count; j++)
        if (jkey_cmp(&keys[j - 1], &keys[j]) == 0) /* 1 and "1", or two invalid UTF-8 keys */
            raisef(L, "%s: result: two keys of one table give the same JSON key \"%s\"", r->name,
                   keys[j].len <= 64 && !memchr(keys[j].s, 0, keys[j].len) ? keys[j].s : "...");
    out_put(L, r, "{", 1);
    for (size_t j = 0; j < count; j++) {
        if (j)
            out_put(L, r, ",", 1);
        enc_string(L, r, keys[j].s, keys[j].len);
        out_put(L, r, ":", 1);
        lua_rawgeti(L, anchor, keys[j].slot);
        lua_rawget(L, idx);
        enc_value(L, r, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }
    out_put(L, r, "}", 1);
    lua_pop(L, 2); /* anchor, keys */
}

/* A table whose keys are exactly 1..n (n >= 1) is an array; any other table an object. */
static void enc_table(lua_State *L, struct run *r, int idx, unsigned depth)
{
    if (depth >= LAMBDA_RESULT_DEPTH_MAX)
        raisef(L, "%s: result: tables nested deeper than %d", r->name,
               (int)LAMBDA_RESULT_DEPTH_MAX);
    const void *self = lua_topointer(L, idx);
    for (unsigned i = 0; i < depth; i++)
        if (r->path[i] == self)
            raisef(L, "%s: result: a table contains itself (cycle)", r->name);
    r->path[depth] = self;
    luaL_checkstack(L, 8, "result nesting");
    size_t count = 0;
    lua_Integer max = 0;
    bool seq = true;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (++count > PSL_RESULT_SIZE_MAX / 2) /* every element costs at least two bytes */
            raisef(L, "%s: result: JSON text exceeds %I bytes (PSL_RESULT_SIZE_MAX)", r->name,
                   (LUAI_UACINT)PSL_RESULT_SIZE_MAX);
        if (seq) {
            lua_Integer k = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
            if (k < 1)
                seq = false;
            else if (k > max)
                max = k;
        }
    }
    if (seq && count > 0 && (lua_Unsigned)max == count)
        enc_array(L, r, idx, max, depth);
    else
        enc_object(L, r, idx, count, depth);
}

static void enc_value(lua_State *L, struct run *r, int idx, unsigned depth)
{
    int t = lua_type(L, idx);
    switch (t) {
    case LUA_TNIL:
        out_put(L, r, "null", 4);
        break;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx))
            out_put(L, r, "true", 4);
        else
            out_put(L, r, "false", 5);
        break;
    case LUA_TNUMBER:
        enc_number(L, r, idx);
        break;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        enc_string(L, r, s, n);
        break;
    }
    case LUA_TTABLE:
        enc_table(L, r, idx, depth);
        break;
    default:
        raisef(L, "%s: result: cannot encode a %s value as JSON", r->name, lua_typename(L, t));
    }
}

/* ---- the run ---- */

/* Message handler: strings pass unchanged (Lua already put the position in front); any other
 * error object is described by its type only. Calling its __tostring here would run script
 * code outside the script's own control flow, and a looping one would never return. */
static int run_msgh(lua_State *L)
{
    int t = lua_type(L, 1);
    if (t == LUA_TSTRING)
        return 1;
    char where[WHERE_SIZE];
    where_lua(L, 1, where, sizeof where);
    if (t == LUA_TNUMBER) {
        lua_pushvalue(L, 1);
        lua_pushfstring(L, "%s%s", where, lua_tostring(L, -1));
    } else {
        lua_pushfstring(L, "%s(error object is a %s value)", where, lua_typename(L, t));
    }
    return 1;
}

static bool starts_with_name(const struct run *r, const char *m, size_t size)
{
    size_t n = strlen(r->name);
    return size > n && memcmp(m, r->name, n) == 0 && m[n] == ':';
}

/* Runs inside lua_pcall: every Lua error, memory errors included, lands in lambda_run. */
static int run_driver(lua_State *L)
{
    struct run *r = run_of(L);
    const struct lambda_job *job = r->job;
    sandbox_open(L);
    r->charging = true;
    int st = luaL_loadbufferx(L, job->code, job->code_size, r->chunk, "t");
    if (st != LUA_OK) {
        size_t size;
        const char *m = lua_tolstring(L, -1, &size);
        if (m && !starts_with_name(r, m, size)) /* "attempt to load a binary chunk ..." */
            lua_pushfstring(L, "%s: %s", r->name, m);
        return lua_error(L);
    }
    lua_call(L, 0, 0);
    lua_pushglobaltable(L);
    const char *entry = job->entry ? job->entry : "main";
    lua_pushstring(L, entry);
    if (lua_rawget(L, -2) != LUA_TFUNCTION)
        raisef(L, "%s: no function %s (define a global function %s(args))", r->name,
                      entry, entry);
    if (job->args_size)
        lua_pushlstring(L, (const char *)job->args, job->args_size);
    else
        lua_pushnil(L);
    lua_call(L, 1, 1);
    enc_value(L, r, lua_gettop(L), 0);
    return 0;
}

/* Copies a message into err as one line: control characters (and NULs) become spaces. */
static void set_msg(char *err, size_t errcap, const char *msg, size_t size)
{
    if (!errcap)
        return;
    size_t n = size < errcap - 1 ? size : errcap - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)msg[i];
        if (c < 0x20 || c == 0x7f)
            err[i] = ' ';
        else
            err[i] = msg[i];
    }
    err[n] = '\0';
}

/* err = prefix + msg, as one line. */
static void set_msg_prefixed(char *err, size_t errcap, const char *prefix, const char *msg,
                             size_t size)
{
    size_t p = strlen(prefix);
    set_msg(err, errcap, prefix, p);
    if (errcap > p + 1)
        set_msg(err + p, errcap - p, msg, size);
}

static psl_err failf(char *err, size_t errcap, psl_err code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static psl_err failf(char *err, size_t errcap, psl_err code, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    size_t size = n < 0 ? 0 : (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1;
    set_msg(err, errcap, buf, size);
    return code;
}

static bool contains(const char *s, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; k <= n && i <= n - k; i++)
        if (memcmp(s + i, needle, k) == 0)
            return true;
    return false;
}

psl_err lambda_run(const struct lambda_job *job, const struct lambda_limits *lim,
                   const struct lambda_ops *ops, char **result, size_t *result_size, char *err,
                   size_t errcap)
{
    if (!err && errcap)
        return PSL_ERR_INVALID_ARG;
    if (errcap)
        err[0] = '\0';
    if (!job || !ops || !result || !result_size || !job->code || (!job->args && job->args_size) ||
        (!job->job_id && job->job_id_size))
        return failf(err, errcap, PSL_ERR_INVALID_ARG, "lambda: a required pointer is NULL");
    if (!ops->get || !ops->put || !ops->del || !ops->flush || !ops->sleep_ms || !ops->log)
        return failf(err, errcap, PSL_ERR_INVALID_ARG, "lambda: an ops callback is NULL");
    if (job->workers == 0 || job->workers > LAMBDA_WORKERS_MAX || job->worker >= job->workers)
        return failf(err, errcap, PSL_ERR_INVALID_ARG,
                     "lambda: worker %" PRIu32 " of %" PRIu32 " is not a valid worker index",
                     job->worker, job->workers);
    if (job->job_id_size > LAMBDA_JOB_ID_SIZE_MAX)
        return failf(err, errcap, PSL_ERR_INVALID_ARG, "lambda: job id of %zu bytes exceeds %u",
                     job->job_id_size, LAMBDA_JOB_ID_SIZE_MAX);
    if (job->entry && strnlen(job->entry, LAMBDA_ENTRY_SIZE_MAX + 1) > LAMBDA_ENTRY_SIZE_MAX)
        return failf(err, errcap, PSL_ERR_INVALID_ARG, "lambda: entry name exceeds %u bytes",
                     LAMBDA_ENTRY_SIZE_MAX);
    const char *name = job->chunkname ? job->chunkname : "lambda";
    if (job->code_size > PSL_SCRIPT_SIZE_MAX)
        return failf(err, errcap, PSL_ERR_TOO_LARGE,
                     "%s: script of %zu bytes exceeds the limit of %u bytes (PSL_SCRIPT_SIZE_MAX)",
                     name, job->code_size, PSL_SCRIPT_SIZE_MAX);
    if (job->args_size > PSL_ARGS_SIZE_MAX)
        return failf(err, errcap, PSL_ERR_TOO_LARGE,
                     "%s: arguments of %zu bytes exceed the limit of %u bytes (PSL_ARGS_SIZE_MAX)",
                     name, job->args_size, PSL_ARGS_SIZE_MAX);

    struct run r;
    memset(&r, 0, sizeof r);
    r.job = job;
    r.ops = ops;
    snprintf(r.chunk, sizeof r.chunk, "=%s", name);
    snprintf(r.name, sizeof r.name, "%s", name); /* luaO_chunkid keeps LUA_IDSIZE - 1 bytes */
    r.mem_max = lim && lim->mem_bytes_max ? lim->mem_bytes_max : (size_t)PSL_LAMBDA_MEM_DEFAULT;
    r.insn_max = lim && lim->insn_max ? lim->insn_max : PSL_LAMBDA_INSN_DEFAULT;
    r.hook_count = r.insn_max < HOOK_STEP ? (int)r.insn_max : HOOK_STEP;

    lua_State *L = lua_newstate(run_alloc, &r);
    if (!L) {
        if (r.host_nomem)
            return failf(err, errcap, PSL_ERR_NOMEM, "%s: out of memory", r.name);
        return failf(err, errcap, PSL_ERR_LAMBDA_MEMORY,
                     "%s: memory cap of %zu bytes is too small for a Lua state", r.name, r.mem_max);
    }
    *(struct run **)lua_getextraspace(L) = &r;
    r.L = L;
    lua_atpanic(L, run_panic);
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, r.hook_count);
    lua_pushcfunction(L, run_msgh); /* light C functions: no allocation outside protection */
    lua_pushcfunction(L, run_driver);
    int status = lua_pcall(L, 0, 0, 1);

    psl_err ret = PSL_OK;
    if (status != LUA_OK) {
        size_t size = 0;
        const char *m = lua_tolstring(L, -1, &size);
        if (!m) {
            m = "(no error message)";
            size = strlen(m);
        }
        if (r.exhausted && r.budget_msg[0]) {
            ret = PSL_ERR_LAMBDA_BUDGET;
            set_msg(err, errcap, r.budget_msg, strlen(r.budget_msg));
        } else if (r.host_nomem) {
            ret = failf(err, errcap, PSL_ERR_NOMEM, "%s: out of memory", r.name);
        } else if (status == LUA_ERRMEM ||
                   (r.mem_refused &&
                    (status == LUA_ERRERR || contains(m, size, "not enough memory")))) {
            if (r.mem_where[0])
                ret = failf(err, errcap, PSL_ERR_LAMBDA_MEMORY,
                            "%smemory cap of %zu bytes exceeded", r.mem_where, r.mem_max);
            else
                ret = failf(err, errcap, PSL_ERR_LAMBDA_MEMORY,
                            "%s: memory cap of %zu bytes exceeded", r.name, r.mem_max);
        } else if (starts_with_name(&r, m, size)) {
            ret = PSL_ERR_LAMBDA;
            set_msg(err, errcap, m, size);
        } else { /* error("x", 0), a chunk made by load, "error in error handling" */
            char prefix[LUA_IDSIZE + 2];
            snprintf(prefix, sizeof prefix, "%s: ", r.name);
            ret = PSL_ERR_LAMBDA;
            set_msg_prefixed(err, errcap, prefix, m, size);
        }
    }
    r.L = NULL;
    r.charging = false;
    lua_close(L); /* runs no script code: finalizers are refused */
    free(r.pending);
    if (ret) {
        free(r.out);
        return ret;
    }
    PSL_ASSERT(r.out && r.out_len <= PSL_RESULT_SIZE_MAX);
    *result = r.out;
    *result_size = r.out_len;
    return PSL_OK;
}
