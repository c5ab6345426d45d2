/* ring.c: single-producer single-consumer rings of framed messages in shared memory, the
 * switchless boundary between a host and its enclave process (see ring.h for the layout).
 * Invariant: the consumer hands out only whole frames that lie inside the data area, read once
 * from the region into private memory; the producer makes a frame visible only by storing its
 * header (release) after every other byte of it, and the cleared slot after it, is written, so
 * a producer that dies mid-message leaves nothing of it behind.
 *
 * Waiting. A side that cannot proceed (consumer: ring empty; producer: not enough space) spins
 * for spin_ns, then sleeps with FUTEX_WAIT on its wait word in the shared region (data_wait for
 * the consumer, space_wait for the producer). The futexes are shared (not FUTEX_PRIVATE): the two
 * sides are different processes. The other side issues FUTEX_WAKE only when the word says
 * someone sleeps, so while both sides are awake a message costs no system call at all.
 *
 * The lost wakeup, and why two seq_cst fences close it. The sleeper does
 *     store(word, 1); fence(seq_cst); load(position)   -> sleeps if nothing changed
 * and the waker does
 *     store(position); fence(seq_cst); load(word)      -> wakes if word == 1.
 * (The consumer's "position" is the frame header slot at its head; the producer's is the head.)
 * Each side stores, then loads what the other stored. Without the fences both loads could read
 * the old values (store-to-load reordering, which x86 does too): the sleeper would miss the new
 * position and the waker would miss the flag, and the sleeper would sleep with a message queued.
 * With them, the two fences are ordered in the single total order of seq_cst operations, and
 * whichever comes second sees the other side's store: either the sleeper sees the position and
 * does not sleep, or the waker sees word == 1. The waker then sets word = 0 before FUTEX_WAKE,
 * so a sleeper that has not yet entered the kernel finds word != 1 and FUTEX_WAIT returns at
 * once (the kernel compares the word and queues the waiter atomically); one that has entered is
 * woken. Either way it re-checks the position before sleeping again. */
#include "ring/ring.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/assert.h"
#include "base/limits.h"

_Static_assert(sizeof(struct ring_shared) <= RING_HEADER_SIZE, "shared header fits its page");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2 && ATOMIC_INT_LOCK_FREE == 2,
               "cross-process atomics must be lock-free (address-free)");
_Static_assert(PSL_RING_MSG_SIZE_MAX % 8u == 0, "frames stay 8-aligned");

/* A frame header as it lies in the data area. */
struct frame_hdr {
    uint32_t type;
    uint32_t size;
};

enum wait_kind { WAIT_DATA, WAIT_SPACE };

static uint64_t align8(uint64_t n)
{
    return (n + 7u) & ~(uint64_t)7u;
}

/* Real monotonic time (vDSO, no system call), not the clock seam: it bounds real futex sleeps
 * and spins, as clock_deadline does for condition variables. */
static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield" ::: "memory");
#endif
}

/* Sleeps while *word == expect, at most timeout_ns (UINT64_MAX: no limit). Shared futex: the
 * waker is another process. Any return (woken, EAGAIN, EINTR, timeout) just means "re-check". */
static void futex_wait(_Atomic uint32_t *word, uint32_t expect, uint64_t timeout_ns)
{
    struct timespec ts, *tsp = NULL;
    if (timeout_ns != UINT64_MAX) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000u);
        ts.tv_nsec = (long)(timeout_ns % 1000000000u);
        tsp = &ts;
    }
    (void)syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, expect, tsp, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *word, int count)
{
    (void)syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, count, NULL, NULL, 0);
}

/* The consumer's read of a slot that decides whether a frame is there. Acquire: pairs with the
 * release store of the header in ring_sendv; the payload written before it is visible. */
static struct frame_hdr frame_get_acquire(const uint8_t *p)
{
    uint64_t v = __atomic_load_n((const uint64_t *)(const void *)p, __ATOMIC_ACQUIRE);
    struct frame_hdr h;
    memcpy(&h, &v, sizeof h);
    return h;
}

static void frame_put(uint8_t *p, uint32_t type, uint32_t size, int order)
{
    struct frame_hdr h = {.type = type, .size = size};
    uint64_t v;
    memcpy(&v, &h, sizeof v);
    __atomic_store_n((uint64_t *)(void *)p, v, order);
}

static psl_err ring_break(struct ring *r)
{
    atomic_store_explicit(&r->broken, true, memory_order_relaxed); /* private flag, no pairing */
    return PSL_ERR_MALFORMED;
}

static bool ring_broken(const struct ring *r)
{
    return atomic_load_explicit(&r->broken, memory_order_relaxed); /* private flag, no pairing */
}

/* Tells a sleeper on *word that its condition may have changed. Called after this side stored
 * a new position (a frame header or the head). */
static void wake_peer(_Atomic uint32_t *word, uint64_t *wakes)
{
    /* Pairs with the fence in ring_wait's sleep path (the lost-wakeup argument at the top). */
    atomic_thread_fence(memory_order_seq_cst);
    /* Relaxed: ordered by the fence above. If it reads 0, a sleeper that sets the word later
     * re-checks after its own fence and sees our new position (see the top). */
    if (atomic_load_explicit(word, memory_order_relaxed) != 0) {
        /* Relaxed: the FUTEX_WAKE system call orders it before the kernel looks for waiters;
         * a sleeper not yet queued sees 0 and FUTEX_WAIT returns at once. */
        atomic_store_explicit(word, 0, memory_order_relaxed);
        futex_wake(word, 1);
        (*wakes)++;
    }
}

/* ---- consumer ---- */

/* Publishes the consumer's new head and wakes a producer waiting for space. */
static void consumer_advance(struct ring *r, uint64_t by)
{
    r->head += by;
    /* Release: pairs with the acquire load of head in send_ready; our reads of the consumed
     * frames happen before the producer may overwrite them. */
    atomic_store_explicit(&r->sh->head, r->head, memory_order_release);
    wake_peer(&r->sh->space_wait, &r->recv_wakes);
}

/* Is a whole message ready at head? PSL_OK with its validated header in *out; PSL_ERR_NOT_FOUND
 * (empty), PSL_ERR_CLOSED (empty and closed) or PSL_ERR_MALFORMED. Consumes pad frames.
 * Readiness is the frame header itself: the slot at head holds zero (RING_TYPE_NONE) until the
 * producer publishes a frame there (see ring_sendv), so the consumer watches one cache line,
 * the one the message starts in, instead of a shared tail and then the data. */
static psl_err recv_ready(struct ring *r, struct frame_hdr *out)
{
    for (;;) {
        uint32_t off = (uint32_t)(r->head & (r->cap - 1u));
        uint64_t room = (uint64_t)r->cap - off; /* >= 8: off is 8-aligned, cap a power of two */
        /* The line after the header holds the rest of a small message: fetch it while this
         * side waits, so it arrives with the header rather than after it. A prefetch reads
         * nothing into our state. */
        __builtin_prefetch(r->data + ((off + 64u) & (r->cap - 1u)));
        struct frame_hdr h = frame_get_acquire(r->data + off);
        if (h.type == RING_TYPE_NONE) {
            /* Acquire: pairs with the release store in ring_close. A producer that sent, then
             * closed, published its frame first: reading the slot again after seeing the flag
             * cannot miss a message sent before the close. */
            if (!atomic_load_explicit(&r->sh->closed, memory_order_acquire))
                return PSL_ERR_NOT_FOUND;
            h = frame_get_acquire(r->data + off);
            if (h.type == RING_TYPE_NONE)
                return PSL_ERR_CLOSED;
        }
        if (h.type == RING_TYPE_PAD) {
            /* A pad runs exactly to the end of the area and never starts at offset 0, so a
             * receive skips at most one pad: a peer cannot keep it looping. The producer
             * publishes the frame at offset 0 before the pad (see ring_sendv). */
            if (off == 0 || h.size != room - RING_FRAME_HEADER_SIZE)
                return ring_break(r);
            consumer_advance(r, room);
            continue;
        }
        if (h.size > r->msg_size_max)
            return ring_break(r);
        uint64_t frame = RING_FRAME_HEADER_SIZE + align8(h.size);
        if (frame > room)
            return ring_break(r);
        *out = h;
        return PSL_OK;
    }
}

/* ---- producer ---- */

/* Can `need` bytes be written at tail? PSL_OK, PSL_ERR_NOT_FOUND (not yet), PSL_ERR_CLOSED or
 * PSL_ERR_MALFORMED. */
static psl_err send_ready(struct ring *r, uint64_t need)
{
    /* Acquire: pairs with the release store in ring_close (nothing else is read under it; the
     * order only makes a close seen here also seen by what this thread does next). */
    if (atomic_load_explicit(&r->sh->closed, memory_order_acquire))
        return PSL_ERR_CLOSED;
    if (r->cap - (r->tail - r->head_seen) >= need)
        return PSL_OK;
    /* Acquire: pairs with the release store of head in consumer_advance; the consumer's reads of
     * the frames before h are complete before we overwrite them. */
    uint64_t h = atomic_load_explicit(&r->sh->head, memory_order_acquire);
    /* The head may only move forward, and not past our tail. */
    if (h - r->head_seen > r->tail - r->head_seen)
        return ring_break(r);
    r->head_seen = h;
    return r->cap - (r->tail - h) >= need ? PSL_OK : PSL_ERR_NOT_FOUND;
}

/* ---- waiting ---- */

static psl_err ring_ready(struct ring *r, enum wait_kind kind, uint64_t need, struct frame_hdr *hdr)
{
    return kind == WAIT_DATA ? recv_ready(r, hdr) : send_ready(r, need);
}

/* Waits until ring_ready says anything but PSL_ERR_NOT_FOUND: spins for spin_ns, then sleeps on
 * the kind's futex word. Returns ring_ready's answer, or on expiry PSL_ERR_NOT_FOUND (timeout 0)
 * or PSL_ERR_TIMEOUT (timeout > 0). */
static psl_err ring_wait(struct ring *r, enum wait_kind kind, uint64_t need, int timeout_ms,
                         struct frame_hdr *hdr)
{
    psl_err err = ring_ready(r, kind, need, hdr);
    if (err != PSL_ERR_NOT_FOUND || timeout_ms == 0)
        return err;

    /* Relaxed: a private setting; a change applies to the next wait. */
    uint32_t spin_ns = atomic_load_explicit(&r->spin_ns, memory_order_relaxed);
    /* The clock is first read after 16 rounds of spinning, not before the first: a message that
     * arrives right away is seen without paying for a clock read (the time limits start that
     * much later, well under a microsecond). */
    uint64_t start = 0, deadline = 0, spin_end = 0;
    for (uint32_t i = 1; spin_ns > 0; i++) {
        cpu_relax();
        err = ring_ready(r, kind, need, hdr);
        if (err != PSL_ERR_NOT_FOUND)
            return err;
        if ((i & 15u) != 0)
            continue;
        uint64_t now = now_ns();
        if (start == 0) {
            start = now;
            deadline = timeout_ms < 0 ? UINT64_MAX : start + (uint64_t)timeout_ms * 1000000u;
            spin_end = start + spin_ns < deadline ? start + spin_ns : deadline;
        } else if (now >= spin_end) {
            break;
        }
    }
    if (start == 0)
        deadline = timeout_ms < 0 ? UINT64_MAX : now_ns() + (uint64_t)timeout_ms * 1000000u;

    _Atomic uint32_t *word = kind == WAIT_DATA ? &r->sh->data_wait : &r->sh->space_wait;
    for (;;) {
        /* Relaxed: ordered before the re-check by the fence below. */
        atomic_store_explicit(word, 1, memory_order_relaxed);
        /* Pairs with the fence in wake_peer and in ring_close (the argument at the top). */
        atomic_thread_fence(memory_order_seq_cst);
        err = ring_ready(r, kind, need, hdr);
        uint64_t now = now_ns();
        if (err != PSL_ERR_NOT_FOUND || now >= deadline) {
            /* Relaxed: only spares the peer a needless FUTEX_WAKE. */
            atomic_store_explicit(word, 0, memory_order_relaxed);
            return err == PSL_ERR_NOT_FOUND ? PSL_ERR_TIMEOUT : err;
        }
        if (kind == WAIT_DATA)
            r->recv_sleeps++;
        else
            r->send_sleeps++;
        futex_wait(word, 1, deadline == UINT64_MAX ? UINT64_MAX : deadline - now);
    }
}

/* ---- API ---- */

size_t ring_region_size(uint32_t capacity)
{
    if (capacity < RING_CAPACITY_MIN || capacity > RING_CAPACITY_MAX ||
        (capacity & (capacity - 1u)) != 0)
        return 0;
    return (size_t)RING_HEADER_SIZE + capacity;
}

uint32_t ring_msg_size_max(uint32_t capacity)
{
    uint32_t half = capacity / 2u - RING_FRAME_HEADER_SIZE;
    return half < PSL_RING_MSG_SIZE_MAX ? half : PSL_RING_MSG_SIZE_MAX;
}

psl_err ring_format(void *mem, size_t mem_size, uint32_t capacity)
{
    size_t need = ring_region_size(capacity);
    if (!mem || need == 0 || mem_size != need || ((uintptr_t)mem & 63u) != 0)
        return PSL_ERR_INVALID_ARG;
    struct ring_shared *sh = mem;
    memset(sh, 0, RING_HEADER_SIZE);
    sh->magic = RING_MAGIC;
    sh->version = RING_VERSION;
    sh->capacity = capacity;
    sh->header_size = RING_HEADER_SIZE;
    /* Relaxed: the peer attaches later, after an operation (fork, passing the fd) that orders
     * these stores before anything it reads. */
    atomic_store_explicit(&sh->tail, 0, memory_order_relaxed);
    atomic_store_explicit(&sh->head, 0, memory_order_relaxed);
    atomic_store_explicit(&sh->data_wait, 0, memory_order_relaxed);
    atomic_store_explicit(&sh->space_wait, 0, memory_order_relaxed);
    atomic_store_explicit(&sh->closed, 0, memory_order_relaxed);
    /* The first frame's header slot reads RING_TYPE_NONE until a frame is published there; the
     * rest of the data area is never read before it is written. */
    memset((uint8_t *)mem + RING_HEADER_SIZE, 0, RING_FRAME_HEADER_SIZE);
    return PSL_OK;
}

static uint32_t read_u32_once(const uint32_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

psl_err ring_attach(struct ring *r, void *mem, size_t mem_size)
{
    if (!r || !mem || ((uintptr_t)mem & 63u) != 0 || mem_size < RING_HEADER_SIZE)
        return PSL_ERR_INVALID_ARG;
    struct ring_shared *sh = mem;
    if (read_u32_once(&sh->magic) != RING_MAGIC)
        return PSL_ERR_BAD_MAGIC;
    if (read_u32_once(&sh->version) != RING_VERSION)
        return PSL_ERR_BAD_VERSION;
    uint32_t cap = read_u32_once(&sh->capacity);
    size_t region = ring_region_size(cap);
    if (region == 0 || region != mem_size || read_u32_once(&sh->header_size) != RING_HEADER_SIZE)
        return PSL_ERR_MALFORMED;
    /* Acquire: pairs with the peer's release stores of head and tail, if it already used the
     * ring (frames sent before we attached are visible to our reads). */
    uint64_t head = atomic_load_explicit(&sh->head, memory_order_acquire);
    uint64_t tail = atomic_load_explicit(&sh->tail, memory_order_acquire);
    if (tail - head > cap || ((head | tail) & 7u) != 0)
        return PSL_ERR_MALFORMED;

    memset(r, 0, sizeof *r);
    r->sh = sh;
    r->data = (uint8_t *)mem + RING_HEADER_SIZE;
    r->cap = cap;
    r->msg_size_max = ring_msg_size_max(cap);
    atomic_init(&r->spin_ns, RING_SPIN_NS_DEFAULT);
    atomic_init(&r->broken, false);
    r->tail = tail;
    r->head_seen = head;
    r->head = head;
    return PSL_OK;
}

psl_err ring_sendv(struct ring *r, uint32_t type, const struct iovec *iov, int iovcnt,
                   int timeout_ms)
{
    if (!r || type == RING_TYPE_PAD || type == RING_TYPE_NONE || iovcnt < 0 ||
        (iovcnt > 0 && !iov))
        return PSL_ERR_INVALID_ARG;
    if (ring_broken(r))
        return PSL_ERR_MALFORMED;
    size_t size = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > 0 && !iov[i].iov_base)
            return PSL_ERR_INVALID_ARG;
        if (iov[i].iov_len > r->msg_size_max - size)
            return PSL_ERR_TOO_LARGE;
        size += iov[i].iov_len;
    }
    uint64_t frame = RING_FRAME_HEADER_SIZE + align8(size);
    uint32_t off = (uint32_t)(r->tail & (r->cap - 1u));
    uint64_t room = (uint64_t)r->cap - off;
    /* A frame that does not fit before the end is preceded by a pad frame filling the rest.
     * need < cap: room < frame <= msg_size_max + 8 <= cap / 2. */
    uint64_t need = frame <= room ? frame : room + frame;
    PSL_ASSERT(need + RING_FRAME_HEADER_SIZE <= r->cap);

    /* The space of the frame, and of the next frame's header slot, which is cleared below. */
    psl_err err = ring_wait(r, WAIT_SPACE, need + RING_FRAME_HEADER_SIZE, timeout_ms, NULL);
    if (err != PSL_OK)
        return err == PSL_ERR_NOT_FOUND ? PSL_ERR_BUSY : err;

    uint8_t *pad = NULL;
    if (frame > room) {
        pad = r->data + off;
        off = 0;
    }
    uint8_t *p = r->data + off;
    /* Payload first; the padding bytes are zeroed (the last 8-byte word, before the payload
     * overwrites its start). */
    if ((size & 7u) != 0)
        memset(p + frame - 8u, 0, 8);
    size_t at = RING_FRAME_HEADER_SIZE;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > 0)
            memcpy(p + at, iov[i].iov_base, iov[i].iov_len);
        at += iov[i].iov_len;
    }
    /* The slot after this frame still holds a header of the previous lap: clear it, so that the
     * consumer finds RING_TYPE_NONE there until the next frame is published. It lies in space the
     * consumer has released (ring_wait above counted it), and the release store below makes the
     * clearing visible no later than this frame. */
    frame_put(r->data + ((r->tail + need) & (r->cap - 1u)), RING_TYPE_NONE, 0, __ATOMIC_RELAXED);
    /* Release: pairs with the acquire load in recv_ready: the payload and the cleared slot are
     * visible before the header is. A frame is visible only when whole: a producer that dies
     * before this store leaves nothing of it. */
    frame_put(p, type, (uint32_t)size, __ATOMIC_RELEASE);
    if (pad)
        /* Release, after the frame at offset 0: a consumer that sees the pad finds that frame. */
        frame_put(pad, RING_TYPE_PAD, (uint32_t)(room - RING_FRAME_HEADER_SIZE), __ATOMIC_RELEASE);
    r->tail += need;
    /* Release: the tail is not what the consumer waits on (the header is) but it says how far
     * this side has written, for a consumer that attaches late (ring_attach). */
    atomic_store_explicit(&r->sh->tail, r->tail, memory_order_release);
    wake_peer(&r->sh->data_wait, &r->send_wakes);
    return PSL_OK;
}

psl_err ring_send(struct ring *r, uint32_t type, const void *data, size_t size, int timeout_ms)
{
    if (size > 0 && !data)
        return PSL_ERR_INVALID_ARG;
    struct iovec iov = {.iov_base = (void *)(uintptr_t)data, .iov_len = size};
    return ring_sendv(r, type, &iov, 1, timeout_ms);
}

psl_err ring_recv(struct ring *r, uint32_t *type, void *buf, size_t cap, size_t *size,
                  int timeout_ms)
{
    if (!r || !type || !size || (cap > 0 && !buf))
        return PSL_ERR_INVALID_ARG;
    if (ring_broken(r))
        return PSL_ERR_MALFORMED;
    struct frame_hdr h;
    psl_err err = ring_wait(r, WAIT_DATA, 0, timeout_ms, &h);
    if (err != PSL_OK)
        return err;
    if (h.size > cap) {
        *size = h.size;
        return PSL_ERR_TOO_LARGE;
    }
    /* The one read of the payload: from here on only the caller's private copy is used. */
    uint32_t off = (uint32_t)(r->head & (r->cap - 1u));
    if (h.size > 0)
        memcpy(buf, r->data + off + RING_FRAME_HEADER_SIZE, h.size);
    *type = h.type;
    *size = h.size;
    consumer_advance(r, RING_FRAME_HEADER_SIZE + align8(h.size));
    return PSL_OK;
}

void ring_close(struct ring *r)
{
    /* Release: pairs with the acquire loads of closed in recv_ready and send_ready; everything
     * this side sent before closing is published before the flag. */
    atomic_store_explicit(&r->sh->closed, 1, memory_order_release);
    /* Pairs with the fence in ring_wait: a waiter that missed the flag had already set its
     * word, which we now clear before waking it (as wake_peer does). */
    atomic_thread_fence(memory_order_seq_cst);
    atomic_store_explicit(&r->sh->data_wait, 0, memory_order_relaxed);
    atomic_store_explicit(&r->sh->space_wait, 0, memory_order_relaxed);
    futex_wake(&r->sh->data_wait, INT_MAX);
    futex_wake(&r->sh->space_wait, INT_MAX);
}

bool ring_is_closed(const struct ring *r)
{
    /* Acquire: pairs with the release store in ring_close. */
    return atomic_load_explicit(&r->sh->closed, memory_order_acquire) != 0;
}

void ring_set_spin(struct ring *r, uint32_t spin_ns)
{
    /* Relaxed: a private setting read at the start of each wait. */
    atomic_store_explicit(&r->spin_ns, spin_ns, memory_order_relaxed);
}

_Atomic uint32_t *ring_note(struct ring *r)
{
    return &r->sh->note;
}

void ring_get_stats(const struct ring *r, struct ring_stats *out)
{
    out->recv_sleeps = r->recv_sleeps;
    out->recv_wakes = r->recv_wakes;
    out->send_sleeps = r->send_sleeps;
    out->send_wakes = r->send_wakes;
}

/* ---- the duplex channel ---- */

/* Maps fd (size bytes) and attaches tx/rx; ring 0 is host→enclave. */
static psl_err chan_map(struct ring_chan *c, int fd, size_t size, uint32_t capacity, bool host)
{
    /* No MAP_POPULATE: pre-faulting two 16 MiB rings costs about 16 ms at every enclave start,
     * most of a cold start, for memory a typical job never touches. A first touch of a shared
     * page costs microseconds once; a ring that has gone round once takes no more faults (the
     * benchmark warms up over one lap for that reason). */
    void *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED)
        return PSL_ERR_IO;
    size_t region = ring_region_size(capacity);
    uint8_t *r0 = map, *r1 = (uint8_t *)map + region;
    psl_err err = PSL_OK;
    if (host) {
        err = ring_format(r0, region, capacity);
        if (err == PSL_OK)
            err = ring_format(r1, region, capacity);
    }
    struct ring_chan tmp = {.fd = fd, .map = map, .map_size = size};
    if (err == PSL_OK)
        err = ring_attach(host ? &tmp.tx : &tmp.rx, r0, region);
    if (err == PSL_OK)
        err = ring_attach(host ? &tmp.rx : &tmp.tx, r1, region);
    if (err != PSL_OK) {
        munmap(map, size);
        return err;
    }
    *c = tmp;
    return PSL_OK;
}

psl_err ring_chan_create(struct ring_chan *c, uint32_t capacity)
{
    size_t region = ring_region_size(capacity);
    if (!c || region == 0)
        return PSL_ERR_INVALID_ARG;
    size_t size = 2 * region;
    /* Not MFD_CLOEXEC: the enclave process inherits the fd across exec. */
    int fd = memfd_create("psl-ring", MFD_ALLOW_SEALING);
    if (fd < 0)
        return PSL_ERR_IO;
    psl_err err = PSL_ERR_IO;
    if (ftruncate(fd, (off_t)size) != 0)
        goto out_close;
    /* Sealed: neither side can shrink the file under the other's mapping (which would make
     * its accesses fault with SIGBUS), nor grow it, nor lift the seals. */
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
        goto out_close;
    err = chan_map(c, fd, size, capacity, true);
    if (err != PSL_OK)
        goto out_close;
    return PSL_OK;
out_close:
    close(fd);
    return err;
}

psl_err ring_chan_attach_fd(struct ring_chan *c, int fd)
{
    if (!c || fd < 0)
        return PSL_ERR_INVALID_ARG;
    struct stat st;
    if (fstat(fd, &st) != 0)
        return PSL_ERR_IO;
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0 || (seals & F_SEAL_SHRINK) == 0)
        return PSL_ERR_IO;
    size_t max = 2 * ring_region_size(RING_CAPACITY_MAX);
    size_t min = 2 * ring_region_size(RING_CAPACITY_MIN);
    if (st.st_size < 0 || (uint64_t)st.st_size < min || (uint64_t)st.st_size > max)
        return PSL_ERR_MALFORMED;
    size_t size = (size_t)st.st_size;
    /* The capacity is read once here to find the layout; ring_attach reads it again from each
     * region and fails unless it gives this same region size. */
    void *probe = mmap(NULL, RING_HEADER_SIZE, PROT_READ, MAP_SHARED, fd, 0);
    if (probe == MAP_FAILED)
        return PSL_ERR_IO;
    uint32_t cap = read_u32_once(&((const struct ring_shared *)probe)->capacity);
    munmap(probe, RING_HEADER_SIZE);
    size_t region = ring_region_size(cap);
    if (region == 0 || size != 2 * region)
        return PSL_ERR_MALFORMED;
    return chan_map(c, fd, size, cap, false);
}

void ring_chan_destroy(struct ring_chan *c)
{
    if (!c)
        return;
    if (c->map)
        munmap(c->map, c->map_size);
    if (c->fd >= 0)
        close(c->fd);
    c->map = NULL;
    c->map_size = 0;
    c->fd = -1;
}
