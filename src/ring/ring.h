/* ring.h: the switchless enclave boundary (DESIGN §7.1): single-producer single-consumer rings of
 * framed messages in shared memory, and the duplex channel of two rings in one memfd mapping.
 *
 * Layout of one ring region (ring_region_size bytes, formatted by ring_format):
 *   [0, RING_HEADER_SIZE)      the shared header: magic, version, capacity (written once), then
 *                              the producer's tail, the consumer's head, the two futex words and
 *                              the close flag, each on its own 128-byte block
 *   [RING_HEADER_SIZE, +cap)   the data area: frames of {u32 type, u32 size, payload, 0-7 zero
 *                              bytes of padding to a multiple of 8}; a frame never straddles the
 *                              end: the producer fills the tail of the area with a pad frame and
 *                              starts again at offset 0.
 * Positions (head, tail) are 64-bit byte counts that only grow; the offset is position % cap.
 * The header slot at the tail always reads RING_TYPE_NONE (0): the producer clears the slot after
 * each frame before it publishes the frame's header, and the consumer waits on the slot at its
 * head (a frame is there once the type is not 0). The shared tail only tells a late attacher
 * where the producer is.
 * All integers are in host byte order: both ends run on the same machine.
 *
 * Trust: each end treats everything the other end can write (indices, headers, payload, flags)
 * as hostile. A receiver reads a frame header once, bounds it, and copies the payload once into the caller's private buffer, which the caller then
 * validates; a sender bounds the head it reads. A violation returns PSL_ERR_MALFORMED and marks
 * the ring broken (every later call on that struct ring returns PSL_ERR_MALFORMED). Nothing the
 * peer writes makes this code read or write outside the region.
 *
 * Threads: one producer and one consumer per ring, which may be different threads or processes.
 * Callers serialize their own producers (one ring_send at a time) and consumers (one ring_recv
 * at a time). After set-up, ring_send, ring_sendv, ring_recv and ring_close make no allocation
 * and no system call other than futex and clock_gettime (vDSO): they run under the enclave's
 * seccomp allow-list. */
#ifndef PSL_RING_RING_H
#define PSL_RING_RING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "base/err.h"

#define RING_MAGIC             0x474e5250u /* "PRNG" little-endian */
#define RING_VERSION           1u
#define RING_HEADER_SIZE       4096u /* the shared header takes one page; the data area is aligned */
#define RING_FRAME_HEADER_SIZE 8u
#define RING_CAPACITY_MIN      4096u
#define RING_CAPACITY_MAX      (1u << 30)
#define RING_TYPE_PAD          0xffffffffu /* reserved: the filler frame before a wrap */
#define RING_TYPE_NONE         0u          /* reserved: an empty header slot, no frame yet */
#define RING_SPIN_NS_DEFAULT   20000u      /* 20 µs of spinning before a futex sleep */

/* The shared header at the start of a ring region: the format both processes agree on (tests
 * and the fuzz target write it directly to play a hostile peer). Hot fields sit RING_BLOCK bytes
 * apart: Intel's adjacent-line prefetcher pulls 64-byte lines in pairs, so fields only 64 bytes
 * apart would still share traffic. Everything after the first block can be written by the peer
 * at any time; neither side trusts what it reads back. */
#define RING_BLOCK 128u
struct ring_shared {
    /* Written once by ring_format; read (once) by ring_attach. */
    uint32_t magic;
    uint32_t version;
    uint32_t capacity;
    uint32_t header_size;
    uint8_t pad0[RING_BLOCK - 16];
    _Atomic uint64_t tail; /* written by the producer only: end of the last published frame */
    uint8_t pad1[RING_BLOCK - 8];
    _Atomic uint64_t head; /* written by the consumer only: end of the last consumed frame */
    uint8_t pad2[RING_BLOCK - 8];
    _Atomic uint32_t data_wait; /* 1 while the consumer sleeps (or is about to) for data */
    uint8_t pad3[RING_BLOCK - 4];
    _Atomic uint32_t space_wait; /* 1 while the producer sleeps (or is about to) for space */
    uint8_t pad4[RING_BLOCK - 4];
    _Atomic uint32_t closed; /* 1 once either side closed the ring */
    uint8_t pad5[RING_BLOCK - 4];
    /* A word for the ring's users, untouched by the ring itself: psl-enclave leaves its exit
     * note here (the system call seccomp refused), which the host reads after its death. */
    _Atomic uint32_t note;
    uint8_t pad6[RING_BLOCK - 4];
};

/* Counters of one end's waiting, private to the process that keeps them (for tests, benches and
 * metrics). Each is written only by the side named. */
struct ring_stats {
    uint64_t recv_sleeps; /* consumer: futex waits entered for data */
    uint64_t recv_wakes;  /* consumer: futex wakes sent to a producer waiting for space */
    uint64_t send_sleeps; /* producer: futex waits entered for space */
    uint64_t send_wakes;  /* producer: futex wakes sent to a sleeping consumer */
};

/* One direction, as seen by one process. The struct is private to its process (caller-provided,
 * never in the shared mapping); the producer's and the consumer's fields are kept on separate
 * cache lines so that a producer thread and a consumer thread of one process do not share one. */
struct ring {
    struct ring_shared *sh; /* borrowed: the shared header inside the mapping */
    uint8_t *data;          /* borrowed: the data area, cap bytes */
    uint32_t cap;           /* validated at attach; never re-read from shared memory */
    uint32_t msg_size_max;  /* min(PSL_RING_MSG_SIZE_MAX, cap / 2 - frame header) */
    _Atomic uint32_t spin_ns;
    _Atomic bool broken; /* set on a violation by the peer; sticky */
    uint8_t pad0[64];
    /* producer side */
    uint64_t tail;      /* next position to write; the shared tail is only ever stored */
    uint64_t head_seen; /* last validated shared head: free space is at least cap - (tail - it) */
    uint64_t send_sleeps, send_wakes;
    uint8_t pad1[64];
    /* consumer side */
    uint64_t head;      /* next position to read; the shared head is only ever stored */
    uint64_t recv_sleeps, recv_wakes;
    uint8_t pad2[64];
};

/* Bytes one ring of `capacity` bytes needs in a mapping (header + data), or 0 if the capacity is
 * not a power of two within [RING_CAPACITY_MIN, RING_CAPACITY_MAX]. */
size_t ring_region_size(uint32_t capacity);

/* Largest payload a ring of `capacity` bytes (a capacity ring_region_size accepts) carries:
 * min(PSL_RING_MSG_SIZE_MAX, capacity / 2 - RING_FRAME_HEADER_SIZE), so that a frame plus the
 * pad before it always fits an empty ring. */
uint32_t ring_msg_size_max(uint32_t capacity);

/* Writes an empty ring into mem (borrowed), which must be exactly ring_region_size(capacity)
 * bytes and 64-byte aligned. Only the creator formats, before the peer attaches.
 * Errors: PSL_ERR_INVALID_ARG (capacity, size or alignment). */
psl_err ring_format(void *mem, size_t mem_size, uint32_t capacity) PSL_MUST_USE;

/* Attaches r to a formatted ring in mem (borrowed until r is no longer used). Validates the
 * header: magic, version, capacity a power of two in range, and mem_size equal to
 * ring_region_size(capacity). Positions start from the shared head and tail as they are now
 * (both 8-aligned, at most the capacity apart), so the peer may already have sent messages to a
 * ring that this side attaches late. The spin time starts at RING_SPIN_NS_DEFAULT.
 * Errors: PSL_ERR_INVALID_ARG (NULL, misaligned), PSL_ERR_BAD_MAGIC, PSL_ERR_BAD_VERSION,
 * PSL_ERR_MALFORMED (capacity, size, positions). r is written only on success. */
psl_err ring_attach(struct ring *r, void *mem, size_t mem_size) PSL_MUST_USE;

/* Sends one message of `size` bytes from data (borrowed for the call) with a caller-chosen type
 * (any value but RING_TYPE_NONE and RING_TYPE_PAD). If the ring is full it waits for space: spinning for the spin
 * time, then sleeping on a futex until the consumer frees space, up to timeout_ms (-1 = forever).
 * The message is visible to the consumer only when whole: a producer that dies while writing
 * leaves nothing of it. Nothing is ever dropped: either the message is queued or an error says
 * it was not.
 * Errors: PSL_ERR_INVALID_ARG (type, NULL data with size > 0), PSL_ERR_TOO_LARGE (size >
 * ring_msg_size_max), PSL_ERR_BUSY (full and timeout_ms == 0), PSL_ERR_TIMEOUT (still full when
 * a timeout > 0 expired), PSL_ERR_CLOSED (either side closed the ring), PSL_ERR_MALFORMED (the
 * consumer wrote an impossible head, or the ring was already broken). */
psl_err ring_send(struct ring *r, uint32_t type, const void *data, size_t size,
                  int timeout_ms) PSL_MUST_USE;

/* As ring_send, with the payload gathered from iov[0..iovcnt) (borrowed for the call) straight
 * into the ring, without an intermediate copy: a caller prepends its own header as iov[0]. */
psl_err ring_sendv(struct ring *r, uint32_t type, const struct iovec *iov, int iovcnt,
                   int timeout_ms) PSL_MUST_USE;

/* Receives the oldest message: copies its payload once into buf (cap bytes, owned by the caller),
 * and sets *type and *size. Waits like ring_send for a message to arrive: timeout_ms -1 =
 * forever, 0 = poll. The caller validates the copied bytes: they came from the peer.
 * Errors: PSL_ERR_NOT_FOUND (empty, timeout_ms == 0), PSL_ERR_TIMEOUT (still empty when a
 * timeout > 0 expired), PSL_ERR_TOO_LARGE (the message is larger than cap: *size is set to its
 * size, nothing else is written and the message stays queued), PSL_ERR_CLOSED (the ring is
 * closed and every message sent before the close has been received), PSL_ERR_MALFORMED (the
 * producer broke the format; the ring is broken from now on). */
psl_err ring_recv(struct ring *r, uint32_t *type, void *buf, size_t cap, size_t *size,
                  int timeout_ms) PSL_MUST_USE;

/* Marks the ring closed (either side may call it, any number of times) and wakes both ends.
 * Afterwards ring_send returns PSL_ERR_CLOSED; ring_recv delivers what is queued, then returns
 * PSL_ERR_CLOSED. */
void ring_close(struct ring *r);

/* True once either side has closed the ring (a hint: the peer can write the flag). */
bool ring_is_closed(const struct ring *r);

/* Sets how long a waiting ring_send or ring_recv spins before it sleeps on the futex (0: sleep
 * at once). Applies to calls that start afterwards; safe to call from any thread. */
void ring_set_spin(struct ring *r, uint32_t spin_ns);

/* The shared note word of r (see struct ring_shared): async-signal-safe to store to. The peer
 * can write it too: treat what is read as a hint. */
_Atomic uint32_t *ring_note(struct ring *r);

/* This end's waiting counters (a snapshot; each counter is exact when read by its own side). */
void ring_get_stats(const struct ring *r, struct ring_stats *out);

/* The duplex channel: two rings of the same capacity in one memfd mapping, ring 0 host→enclave
 * at offset 0 and ring 1 enclave→host right after it. The memfd is sealed against shrinking and
 * growing, so the peer cannot truncate it under a mapping (which would turn reads into SIGBUS). */
struct ring_chan {
    int fd;          /* owned: the memfd (not close-on-exec: a spawned enclave inherits it) */
    void *map;       /* owned: the MAP_SHARED mapping of the whole memfd */
    size_t map_size; /* 2 * ring_region_size(capacity) */
    struct ring tx;  /* this side's producer ring */
    struct ring rx;  /* this side's consumer ring */
};

/* Host side: creates the memfd, sizes and seals it, maps it, formats both rings and attaches
 * tx = host→enclave, rx = enclave→host. The child that inherits c->fd calls ring_chan_attach_fd.
 * Errors: PSL_ERR_INVALID_ARG (capacity), PSL_ERR_IO (memfd, ftruncate, seals or mmap failed).
 * c is written only on success. */
psl_err ring_chan_create(struct ring_chan *c, uint32_t capacity) PSL_MUST_USE;

/* Enclave side: maps the memfd fd (taken on success: ring_chan_destroy closes it; left to the
 * caller on failure), checks that it is sealed against shrinking and that its size matches two
 * rings of the capacity in ring 0's header, validates and attaches tx = enclave→host, rx =
 * host→enclave. Errors: PSL_ERR_INVALID_ARG (fd), PSL_ERR_IO (fstat, seals, mmap), or those of
 * ring_attach. c is written only on success. */
psl_err ring_chan_attach_fd(struct ring_chan *c, int fd) PSL_MUST_USE;

/* Unmaps the mapping and closes the fd (the peer's mapping stays valid). Does not close the
 * rings: call ring_close first to tell the peer. Call it once on a channel that ring_chan_create
 * or ring_chan_attach_fd set up; calling it again afterwards does nothing. */
void ring_chan_destroy(struct ring_chan *c);

#endif
