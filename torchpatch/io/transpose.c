/* Reordering a volume from the files' order (first axis fastest) into C order.
 *
 * A NIfTI or SimpleITK volume of shape (I, J, K) is stored with i fastest: its
 * memory is a C-ordered (K, J, I) array, and torchpatch hands out (I, J, K) in
 * C order. Reversing the axes is done in two passes through a scratch buffer:
 *
 *   1. the (K, J * I) matrix is transposed into (J * I, K), i.e. (J, I, K);
 *   2. the first two axes are swapped, moving whole runs of K elements.
 *
 * Pass 1 moves every element on its own; it works on square tiles of one
 * 16-byte vector per row (16 x 16 bytes, 8 x 8 int16, 4 x 4 float32, 2 x 2
 * float64), transposed in registers by repeated interleaving, in blocks of
 * rows and columns that keep the pages in use few (a transpose that strides
 * across many pages is bound by page walks, not by memory bandwidth). Blocks
 * of 128 rows x 1024 columns were the fastest of 16-128 x 64-1024 (with and
 * without software prefetching) on 160 x 192 x 160 and 512 x 512 x 96
 * volumes here. Pass 1 on one core: 160 x 192 x 160 uint8 0.3 ms, int16
 * 0.7 ms, float32 2.1 ms, against 4.1, 4.4 and 6.8 ms for torch's blocked
 * 2D transpose; 512 x 512 x 96 int16 7.3 ms.
 *
 * Pass 1 reads the whole source before pass 2 writes the output, so the
 * output may be the source's own memory. An output apart from the source is
 * written in one pass instead (reverse_one_pass): a few j planes
 * at a time are transposed into a scratch that stays in the core's cache,
 * and their runs of K written out with streaming stores, which fill whole
 * lines without reading them first. One core, 512 x 512 x 96: int16 7.0
 * against 13.5 ms, float32 12.9 against 25.6 ms; 160 x 192 x 160 float32
 * 2.3 against 4.6 ms. The work runs without the GIL.
 *
 * copy_boxes cuts boxes into a batch: from C-ordered sources, runs of K
 * elements; from sources still in the files' order, each box is gathered
 * into a scratch (its k planes one cache line further apart than packed,
 * since planes 64 x 64 elements apart all fall in one cache set), transposed
 * there j by j with the same tiles, and its runs of K moved into place: 16
 * boxes of 64^3 out of a 160 x 192 x 160 volume in 0.8-0.9 ms (int16) and
 * 1.9-2.1 ms (float32), against 1.2 and 2.7 ms with the tiles read straight
 * from the volume, 3.5 and 7.0 ms with them written straight into the batch,
 * and 1.8-2.0 and 4.5-4.8 ms to reorder the volume and copy its boxes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if defined(__SSE2__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 2)
#include <emmintrin.h>
#define TORCHPATCH_SSE2 1
#endif

#if defined(__GNUC__)
#define UNROLL _Pragma("GCC unroll 16")
#else
#define UNROLL
#endif

/* Rows and columns of the source per block of pass 1 (see the comment above). */
#define BLOCK_ROWS 128
#define BLOCK_COLUMNS 1024
#define PASS2_ROWS 8

#ifdef TORCHPATCH_SSE2
/* One n x n tile, n = 16 / element size: n rows loaded, log2(n) rounds of
 * interleaving the first half of the rows with the second half (a perfect
 * shuffle of the row index bits each round), n columns stored. */
#define TILE(NAME, N, LOW, HIGH)                                                                 \
    static inline void NAME(const char *src, char *dst, Py_ssize_t src_row, Py_ssize_t dst_row) { \
        __m128i r[N], t[N];                                                                      \
        UNROLL for (int m = 0; m < N; m++) r[m] = _mm_loadu_si128((const __m128i *)(src + m * src_row)); \
        UNROLL for (int round = 1; round < N; round <<= 1) {                                     \
            UNROLL for (int m = 0; m < N / 2; m++) {                                             \
                t[2 * m] = LOW(r[m], r[m + N / 2]);                                              \
                t[2 * m + 1] = HIGH(r[m], r[m + N / 2]);                                         \
            }                                                                                    \
            UNROLL for (int m = 0; m < N; m++) r[m] = t[m];                                      \
        }                                                                                        \
        UNROLL for (int m = 0; m < N; m++) _mm_storeu_si128((__m128i *)(dst + m * dst_row), r[m]); \
    }
TILE(tile_1, 16, _mm_unpacklo_epi8, _mm_unpackhi_epi8)
TILE(tile_2, 8, _mm_unpacklo_epi16, _mm_unpackhi_epi16)
TILE(tile_4, 4, _mm_unpacklo_epi32, _mm_unpackhi_epi32)
TILE(tile_8, 2, _mm_unpacklo_epi64, _mm_unpackhi_epi64)
#endif

/* Elements [r0, r1) x [c0, c1) one by one (the edges, or every tile without SSE2): copies of a constant
 * size, which compilers turn into single moves (no call per element, and no alignment assumed). */
#define SCALAR(SIZE)                                                                                        \
    for (Py_ssize_t r = r0; r < r1; r++) {                                                                 \
        const char *from = src + r * src_row;                                                              \
        for (Py_ssize_t c = c0; c < c1; c++) memcpy(dst + c * dst_row + r * (SIZE), from + c * (SIZE), SIZE); \
    }
static void transpose_scalar(const char *src, char *dst, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t c0,
                             Py_ssize_t c1, Py_ssize_t src_row, Py_ssize_t dst_row, int size) {
    switch (size) {
    case 1: SCALAR(1) break;
    case 2: SCALAR(2) break;
    case 4: SCALAR(4) break;
    default: SCALAR(8) break;
    }
}

/* dst (columns, rows) <- the transpose of src (rows, columns); rows are src_row and dst_row bytes apart. */
static void transpose(const char *src, char *dst, Py_ssize_t rows, Py_ssize_t columns, Py_ssize_t src_row,
                      Py_ssize_t dst_row, int size) {
    const Py_ssize_t n = 16 / size;
    for (Py_ssize_t rb = 0; rb < rows; rb += BLOCK_ROWS) {
        const Py_ssize_t re = rb + BLOCK_ROWS < rows ? rb + BLOCK_ROWS : rows;
        for (Py_ssize_t cb = 0; cb < columns; cb += BLOCK_COLUMNS) {
            const Py_ssize_t ce = cb + BLOCK_COLUMNS < columns ? cb + BLOCK_COLUMNS : columns;
            Py_ssize_t r0 = rb;
#ifdef TORCHPATCH_SSE2
            for (; r0 + n <= re; r0 += n) {
                Py_ssize_t c0 = cb;
                for (; c0 + n <= ce; c0 += n) {
                    const char *a = src + r0 * src_row + c0 * size;
                    char *b = dst + c0 * dst_row + r0 * size;
                    switch (size) {
                    case 1: tile_1(a, b, src_row, dst_row); break;
                    case 2: tile_2(a, b, src_row, dst_row); break;
                    case 4: tile_4(a, b, src_row, dst_row); break;
                    default: tile_8(a, b, src_row, dst_row); break;
                    }
                }
                transpose_scalar(src, dst, r0, r0 + n, c0, ce, src_row, dst_row, size);
            }
#endif
            transpose_scalar(src, dst, r0, re, cb, ce, src_row, dst_row, size);
        }
    }
}

static void reverse_axes(const char *src, char *dst, char *scratch, Py_ssize_t si, Py_ssize_t sj, Py_ssize_t sk,
                         int size) {
    if (sk == 1) {
        /* A 2D image: one transpose of (J, I); through the scratch, as dst may be src. */
        transpose(src, scratch, sj, si, si * size, sj * size, size);
        memcpy(dst, scratch, (size_t)(si * sj * size));
        return;
    }
    /* Pass 1: (K, J * I) -> (J * I, K), i.e. (J, I, K). */
    transpose(src, scratch, sk, sj * si, sj * si * size, sk * size, size);
    /* Pass 2: (J, I, K) -> (I, J, K), runs of K elements, PASS2_ROWS rows of I at a time: each j's runs of those
     * rows are read together (one row at a time, 512x512x96: int16 8.5, float32 13.3, uint8 3.4 ms; eight:
     * 6.3, 10.7 and 2.7 ms; 4, 16 and 32 tried). */
    const Py_ssize_t run = sk * size;
    for (Py_ssize_t i0 = 0; i0 < si; i0 += PASS2_ROWS) {
        const Py_ssize_t i1 = i0 + PASS2_ROWS < si ? i0 + PASS2_ROWS : si;
        for (Py_ssize_t j = 0; j < sj; j++)
            for (Py_ssize_t i = i0; i < i1; i++)
                memcpy(dst + (i * sj + j) * run, scratch + (j * si + i) * run, (size_t)run);
    }
}

/* Whether itemsize is one the copies handle; else a ValueError is set. */
static int itemsize_ok(int size) {
    if (size == 1 || size == 2 || size == 4 || size == 8) return 1;
    PyErr_Format(PyExc_ValueError, "itemsize must be 1, 2, 4 or 8 bytes, not %d", size);
    return 0;
}

/* reverse into an output apart from its source, in one pass: ``planes`` j planes at a time, the (K, planes * I)
 * matrix of the source is transposed into the scratch (its (planes, I, K) runs: tiles read from memory, written
 * into the cache) and each run of K elements written to its place in the output. 512 x 512 x 96 int16, one
 * core, planes of 96 KiB: 1 plane at a time 13.2 ms, 2: 10.3, 4: 9.4, 8: 9.5 ms with plain stores; 7.0 ms
 * with 8 and streaming stores (16: 6.8, 32: 7.3). Split between
 * two threads of torch's team it took 3.9 ms, but their spinning after it slowed the next file's two-thread
 * inflate by more (160 x 192 x 160 int16: 16-19 against 11-13 ms): one thread. */
/* n bytes from src to dst; with stream, the 16-byte aligned stretch of dst by streaming stores (the caller fences). */
static inline void put_run(char *dst, const char *src, size_t n, int stream) {
#ifdef TORCHPATCH_SSE2
    if (stream) {
        const size_t head = (16 - ((size_t)dst & 15)) & 15;
        if (head < n) {
            memcpy(dst, src, head);
            size_t o = head;
            for (; o + 16 <= n; o += 16)
                _mm_stream_si128((__m128i *)(dst + o), _mm_loadu_si128((const __m128i *)(src + o)));
            memcpy(dst + o, src + o, n - o);
            return;
        }
    }
#else
    (void)stream;
#endif
    memcpy(dst, src, n);
}

static void reverse_one_pass(const char *src, char *dst, char *local, Py_ssize_t si, Py_ssize_t sj, Py_ssize_t sk,
                             int size, Py_ssize_t planes, int stream) {
    const Py_ssize_t run = sk * size;
    for (Py_ssize_t j0 = 0; j0 < sj; j0 += planes) {
        const Py_ssize_t j1 = j0 + planes < sj ? j0 + planes : sj;
        transpose(src + j0 * si * size, local, sk, (j1 - j0) * si, sj * si * size, run, size);
        for (Py_ssize_t i = 0; i < si; i++)
            for (Py_ssize_t j = j0; j < j1; j++)
                put_run(dst + (i * sj + j) * run, local + ((j - j0) * si + i) * run, (size_t)run, stream);
    }
#ifdef TORCHPATCH_SSE2
    if (stream) _mm_sfence();
#endif
}

/* Volumes from this size on are written with streaming stores (smaller ones stay in the cache for what reads
 * them next; 160 x 192 x 160 int16, 9.8 MB: 1.0 against 1.7 ms with plain stores). */
#define STREAM_BYTES (4 << 20)

PyDoc_STRVAR(reverse_doc,
             "reverse(source, out, scratch, size_i, size_j, size_k, itemsize)\n"
             "--\n\n"
             "Write into ``out`` the (I, J, K) C-ordered array whose memory in ``source`` is (K, J, I) in C order.\n\n"
             "``source`` and ``out`` hold at least size_i * size_j * size_k elements of ``itemsize`` bytes (1, 2,\n"
             "4 or 8). ``out`` may be ``source``'s own memory: then two passes through ``scratch``, which holds as\n"
             "much. An ``out`` apart from ``source`` is written in one pass: ``scratch`` holds the j planes of\n"
             "size_i * size_k elements transposed at a time (at least one; a 2D volume, size_k 1, needs none).");

static PyObject *reverse(PyObject *module, PyObject *args) {
    Py_buffer src, dst, scratch;
    Py_ssize_t si, sj, sk;
    int size;
    (void)module;
    if (!PyArg_ParseTuple(args, "y*w*w*nnni", &src, &dst, &scratch, &si, &sj, &sk, &size)) return NULL;
    PyObject *result = NULL;
    if (!itemsize_ok(size)) {
    } else if (si < 0 || sj < 0 || sk < 0) {
        PyErr_Format(PyExc_ValueError, "sizes must not be negative, got (%zd, %zd, %zd)", si, sj, sk);
    } else if (si && sj && sk && (si > PY_SSIZE_T_MAX / sj || si * sj > PY_SSIZE_T_MAX / sk / size)) {
        PyErr_Format(PyExc_ValueError, "a volume of (%zd, %zd, %zd) elements of %d bytes is too large", si, sj, sk,
                     size);
    } else {
        const Py_ssize_t need = si * sj * sk * size, plane = si * sk * size;
        const char *from = (const char *)src.buf;
        const uintptr_t a = (uintptr_t)src.buf, b = (uintptr_t)dst.buf;
        const int apart = b + (uintptr_t)need <= a || a + (uintptr_t)need <= b;
        const Py_ssize_t planes = !apart || sk == 1 || plane == 0 ? 0 : scratch.len / plane;
        if (src.len < need || dst.len < need || (!apart && scratch.len < need)) {
            PyErr_Format(PyExc_ValueError,
                         "buffers of %zd bytes are needed for (%zd, %zd, %zd) elements of %d bytes; "
                         "got source %zd, out %zd, scratch %zd",
                         need, si, sj, sk, size, src.len, dst.len, scratch.len);
        } else if (apart && sk > 1 && need > 0 && planes < 1) {
            PyErr_Format(PyExc_ValueError, "a scratch of %zd bytes cannot hold one plane of %zd bytes", scratch.len,
                         plane);
        } else {
            if (need > 0) {
                Py_BEGIN_ALLOW_THREADS
                if (!apart)
                    reverse_axes(from, (char *)dst.buf, (char *)scratch.buf, si, sj, sk, size);
                else if (sk == 1)
                    transpose(from, (char *)dst.buf, sj, si, si * size, sj * size, size);
                else
                    reverse_one_pass(from, (char *)dst.buf, (char *)scratch.buf, si, sj, sk, size,
                                     planes < sj ? planes : sj, need >= STREAM_BYTES);
                Py_END_ALLOW_THREADS
            }
            result = Py_None;
            Py_INCREF(result);
        }
    }
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    PyBuffer_Release(&scratch);
    return result;
}

/* Ask for the cache lines of ``bytes`` bytes at ``p`` (a box's run in a plane still to be copied). Strided runs
 * are latency-bound: copying 256 boxes of 64^3 out of 16 volumes of 160 x 192 x 160 (the queue benchmark's
 * batches of an epoch, image and label), one thread, took 19.3-19.9 ms (int16) and 26.4-28.4 ms (float32),
 * 12.7 and 20.2 ms with each plane's runs prefetched while the plane before is copied (distances of 2 to 256
 * runs tried: one plane ahead, 64 runs, was the best; the same prefetches from nested loops over planes and
 * rows gave 15.0 and 24.5 ms), against 6.0 and 12.4 ms for as many contiguous bytes. Runs longer than
 * PREFETCHED_RUN bytes are left to the hardware's prefetchers. */
#define PREFETCHED_RUN 2048

static inline void prefetch_lines(const char *p, size_t bytes, int write) {
#if defined(__GNUC__)
    if (!bytes) return;
    for (size_t offset = 0; offset < bytes + 63; offset += 64) {
        const char *line = p + (offset < bytes ? offset : bytes - 1);  /* the run's last line too */
        if (write)
            __builtin_prefetch(line, 1, 3);
        else
            __builtin_prefetch(line, 0, 3);
    }
#else
    (void)p;
    (void)bytes;
    (void)write;
#endif
}

static inline void prefetch_run(const char *p, size_t bytes) { prefetch_lines(p, bytes, 0); }

/* Splitting a call between the threads of torch's OpenMP team.
 *
 * With torch's default threads, the training loop's thread leads a GNU OpenMP (libgomp) team whose other
 * threads spin for a millisecond or two after each of torch's parallel regions, waiting for the next; a
 * thread of our own next to them would fight them for the cores. So a call given threads > 1 runs as a
 * parallel region of that same team: team_init binds libgomp's entry points in the copy torch loaded (its
 * path from torchpatch.io), and the copies below split their work by parts, part p of n on team thread p,
 * each output byte written by one thread in the order a single thread writes it (the same bytes). Without
 * the team (another OpenMP, no dlopen), a call runs on the calling thread. The GIL is released first. */
#if defined(__linux__)
#include <dlfcn.h>
#define TORCHPATCH_TEAM 1
#endif

typedef void (*part_fn)(void *data, Py_ssize_t part, Py_ssize_t parts);
static void (*team_parallel)(void (*)(void *), void *, unsigned, unsigned);
static int (*team_member)(void);
static int (*team_size)(void);

struct team_call {
    part_fn fn;
    void *data;
};

static void team_entry(void *call) {
    const struct team_call *c = call;
    c->fn(c->data, team_member(), team_size());
}

/* fn's parts on ``threads`` threads of the calling thread's team (see above), or all on this thread. */
static void run_parts(part_fn fn, void *data, int threads) {
    if (threads > 1 && team_parallel != NULL) {
        struct team_call call = {fn, data};
        team_parallel(team_entry, &call, (unsigned)threads, 0);
    } else {
        fn(data, 0, 1);
    }
}

/* [first, last) of ``units`` for part ``part`` of ``parts`` (contiguous, sizes differing by one at most). */
static void part_range(Py_ssize_t units, Py_ssize_t part, Py_ssize_t parts, Py_ssize_t *first, Py_ssize_t *last) {
    *first = units / parts * part + (part < units % parts ? part : units % parts);
    *last = *first + units / parts + (part < units % parts);
}

PyDoc_STRVAR(team_init_doc,
             "team_init(path)\n"
             "--\n\n"
             "Bind the entry points of the GNU OpenMP library already loaded from ``path`` (torch's), so that the\n"
             "copies given threads > 1 run on its team. Returns whether they are bound; loads nothing new.");

static PyObject *team_init(PyObject *module, PyObject *args) {
    const char *path;
    (void)module;
    if (!PyArg_ParseTuple(args, "s", &path)) return NULL;
#ifdef TORCHPATCH_TEAM
    void *library = dlopen(path, RTLD_NOLOAD | RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) Py_RETURN_FALSE;
    void *parallel = dlsym(library, "GOMP_parallel"), *member = dlsym(library, "omp_get_thread_num"),
         *size = dlsym(library, "omp_get_num_threads");
    if (parallel == NULL || member == NULL || size == NULL) Py_RETURN_FALSE;
    team_member = (int (*)(void))member;
    team_size = (int (*)(void))size;
    team_parallel = (void (*)(void (*)(void *), void *, unsigned, unsigned))parallel;
    Py_RETURN_TRUE;
#else
    Py_RETURN_FALSE;
#endif
}

/* Boxes of a batch: each box is copied row by row (runs of K elements) out of its own C-ordered
 * (C, I, J, K) source into one contiguous (N, C, a, b, c) buffer, all without the GIL (one call a
 * batch: a thread making batches next to the training loop takes the GIL back once). */
struct box {
    Py_buffer view;   /* the source */
    Py_ssize_t g[6];  /* its size_i, size_j, size_k, then the box's i0, j0, k0 */
};

/* copy_boxes' C-ordered sources: a box's runs one after the other, those one plane ahead prefetched (short
 * runs only: the hardware follows long ones). A box as long as its source along K is one run per plane. The
 * parts split the (box, channel) pairs, each a contiguous stretch of the batch. */
struct copy_job {
    const struct box *items;
    char *out;
    Py_ssize_t count, sa, sb, sc, channels;
    int size;
};

/* One (box, channel) unit of copy_boxes: its runs one after the other into its stretch of the batch. */
static void copy_unit(const struct copy_job *job, Py_ssize_t unit) {
    const Py_ssize_t sa = job->sa, sb = job->sb, sc = job->sc, channels = job->channels, size = job->size;
    const Py_ssize_t *g = job->items[unit / channels].g, c = unit % channels;
    const Py_ssize_t row = g[2] * size, plane = g[1] * row, volume = g[0] * plane;
    const char *from = (const char *)job->items[unit / channels].view.buf + c * volume + g[3] * plane + g[4] * row + g[5] * size;
    char *out = job->out + unit * sa * sb * sc * size;
    const Py_ssize_t per_plane = sc == g[2] ? 1 : sb, runs = sa * per_plane;
    const size_t length = sc == g[2] ? (size_t)(sb * sc * size) : (size_t)(sc * size);
    const int prefetch = length <= PREFETCHED_RUN;
    for (Py_ssize_t r = 0; r < runs; r++) {
        const Py_ssize_t ahead = r + per_plane;
        if (prefetch && ahead < runs) prefetch_run(from + (ahead / per_plane) * plane + (ahead % per_plane) * row, length);
        memcpy(out, from + (r / per_plane) * plane + (r % per_plane) * row, length);
        out += length;
    }
}

/* Boxes n..m-1, every channel of each: copied row by row together, each row of the source read once through
 * all of them (the boxes start on the same rows of the same source and are shorter than its rows). */
static void copy_row_group(const struct copy_job *job, Py_ssize_t n, Py_ssize_t m) {
    const Py_ssize_t sa = job->sa, sb = job->sb, sc = job->sc, channels = job->channels, size = job->size;
    const Py_ssize_t *g = job->items[n].g;
    const Py_ssize_t row = g[2] * size, plane = g[1] * row, volume = g[0] * plane, unit_bytes = sa * sb * sc * size;
    const size_t run = (size_t)(sc * size);
    const int prefetch = run <= PREFETCHED_RUN;
    for (Py_ssize_t c = 0; c < channels; c++) {
        const char *from = (const char *)job->items[n].view.buf + c * volume + g[3] * plane + g[4] * row;
        for (Py_ssize_t a = 0; a < sa; a++) {
            for (Py_ssize_t b = 0; b < sb; b++) {
                const char *source = from + a * plane + b * row;
                for (Py_ssize_t q = n; q < m; q++) {
                    const Py_ssize_t k = job->items[q].g[5] * size;
                    if (prefetch && a + 1 < sa) prefetch_run(source + plane + k, run);
                    memcpy(job->out + (q * channels + c) * unit_bytes + (a * sb + b) * (Py_ssize_t)run, source + k, run);
                }
            }
        }
    }
}

/* Whether boxes p and q are cut from the same rows of the same source (patches one after another along K). */
static int same_rows(const struct box *p, const struct box *q) {
    return p->view.buf == q->view.buf && p->g[0] == q->g[0] && p->g[1] == q->g[1] && p->g[2] == q->g[2] &&
           p->g[3] == q->g[3] && p->g[4] == q->g[4];
}

static void copy_part(void *data, Py_ssize_t part, Py_ssize_t parts) {
    const struct copy_job *job = data;
    const Py_ssize_t channels = job->channels;
    Py_ssize_t first, last;
    part_range(job->count * channels, part, parts, &first, &last);
    /* Boxes cut from the same source rows (a grid's patches along K), every unit (box, channel) of them in this
     * part, are copied row by row together: the source's rows are then read as one run rather than as short
     * runs a row apart (the grid benchmark's 125 patches of 64^3 out of a 256^3 volume, batches of 8: 8.7-9.5
     * against 13-19 ms; 4 channels 87-106 against 113-140 ms). Each unit writes its own stretch of the batch,
     * so the order of the copies changes nothing. Other units are copied one by one. */
    for (Py_ssize_t unit = first; unit < last;) {
        const Py_ssize_t n = unit / channels;
        Py_ssize_t m = n + 1;
        if (unit % channels == 0 && job->sc < job->items[n].g[2])
            while ((m + 1) * channels <= last && same_rows(&job->items[n], &job->items[m])) m++;
        if (m == n + 1) {
            copy_unit(job, unit++);
            continue;
        }
        copy_row_group(job, n, m);
        unit = m * channels;
    }
}

PyDoc_STRVAR(copy_boxes_doc,
             "copy_boxes(out, boxes, size_a, size_b, size_c, channels, itemsize, file_order=False, scratch=None, threads=1)\n"
             "--\n\n"
             "Copy len(boxes) boxes of (channels, size_a, size_b, size_c) elements into ``out``, one after the other.\n\n"
             "Each box is ``(source, size_i, size_j, size_k, i0, j0, k0)``: a C-ordered (channels, size_i, size_j,\n"
             "size_k) buffer and the box's first voxel; boxes lie inside their sources. With ``file_order`` true,\n"
             "every source is (channels, size_k, size_j, size_i) in C order instead (each channel in the files'\n"
             "order, i fastest): each box is transposed into place through ``scratch`` (a writable buffer of\n"
             "2 * size_a * size_b * size_c * itemsize + 64 * size_c bytes at least; else one is allocated). C-ordered\n"
             "boxes are split between ``threads`` threads of torch's OpenMP team (see team_init).");

static PyObject *copy_boxes(PyObject *module, PyObject *args) {
    Py_buffer dst;
    PyObject *boxes;
    Py_ssize_t sa, sb, sc, channels;
    int size, file_order = 0, threads = 1;
    Py_buffer given = {0};
    PyObject *given_object = Py_None;
    (void)module;
    if (!PyArg_ParseTuple(args, "w*Onnnni|pOi", &dst, &boxes, &sa, &sb, &sc, &channels, &size, &file_order,
                          &given_object, &threads))
        return NULL;
    if (given_object != Py_None && PyObject_GetBuffer(given_object, &given, PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&dst);
        return NULL;
    }
    PyObject *seq = PySequence_Fast(boxes, "boxes must be a sequence of tuples");
    if (seq == NULL) {
        if (given.buf != NULL) PyBuffer_Release(&given);
        PyBuffer_Release(&dst);
        return NULL;
    }
    const Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    struct box *items = PyMem_Calloc((size_t)count + 1, sizeof(struct box));
    Py_ssize_t held = 0;
    PyObject *result = NULL;
    if (items == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (!itemsize_ok(size)) goto done;
    if (sa < 0 || sb < 0 || sc < 0 || channels < 0) {
        PyErr_Format(PyExc_ValueError, "box size (%zd, %zd, %zd) and %zd channels are out of range", sa, sb, sc,
                     channels);
        goto done;
    }
    if ((sa && sb && sc && channels) &&
        (sa > PY_SSIZE_T_MAX / sb || sa * sb > PY_SSIZE_T_MAX / sc / channels / size / (count + 1))) {
        PyErr_Format(PyExc_ValueError, "boxes of (%zd, %zd, %zd, %zd) elements of %d bytes are too large", channels, sa,
                     sb, sc, size);
        goto done;
    }
    const Py_ssize_t box_bytes = channels * sa * sb * sc * size;
    if (dst.len < box_bytes * count) {
        PyErr_Format(PyExc_ValueError, "out holds %zd bytes, %zd boxes of %zd bytes need %zd", dst.len, count, box_bytes,
                     box_bytes * count);
        goto done;
    }
    for (Py_ssize_t n = 0; n < count; n++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, n);
        PyObject *source;
        Py_ssize_t *g = items[n].g;
        if (!PyArg_ParseTuple(item, "Onnnnnn;a box is (source, size_i, size_j, size_k, i0, j0, k0)", &source, &g[0],
                              &g[1], &g[2], &g[3], &g[4], &g[5]))
            goto done;
        if (PyObject_GetBuffer(source, &items[n].view, PyBUF_C_CONTIGUOUS) < 0) goto done;
        held = n + 1;
        if (g[0] < 0 || g[1] < 0 || g[2] < 0 || g[3] < 0 || g[4] < 0 || g[5] < 0 || g[3] > g[0] - sa ||
            g[4] > g[1] - sb || g[5] > g[2] - sc) {
            PyErr_Format(PyExc_ValueError, "box %zd at (%zd, %zd, %zd) of size (%zd, %zd, %zd) is not inside its (%zd, %zd, %zd) source",
                         n, g[3], g[4], g[5], sa, sb, sc, g[0], g[1], g[2]);
            goto done;
        }
        if (g[0] > PY_SSIZE_T_MAX / (g[1] ? g[1] : 1) ||
            g[0] * g[1] > PY_SSIZE_T_MAX / (g[2] ? g[2] : 1) / size / (channels ? channels : 1) ||
            items[n].view.len < channels * g[0] * g[1] * g[2] * size) {
            PyErr_Format(PyExc_ValueError, "source %zd holds %zd bytes, not %zd channels of (%zd, %zd, %zd) elements of %d bytes",
                         n, items[n].view.len, channels, g[0], g[1], g[2], size);
            goto done;
        }
    }
    char *scratch = NULL;
    char *gathered = NULL, *allocated = NULL;
    const Py_ssize_t scratch_bytes = 2 * (box_bytes / (channels ? channels : 1)) + sc * 64;
    if (file_order && box_bytes > 0) {
        /* The caller's scratch when it is large enough (reused: no fresh pages), else one of our own. */
        if (given.buf != NULL && given.len >= scratch_bytes) {
            scratch = (char *)given.buf;
        } else if ((scratch = allocated = PyMem_RawMalloc((size_t)scratch_bytes)) == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        gathered = scratch + box_bytes / channels;
    }
    if (box_bytes > 0) {
        Py_BEGIN_ALLOW_THREADS
        char *out = (char *)dst.buf;
        const size_t run = (size_t)(sc * size);
        for (Py_ssize_t n = 0; file_order && n < count; n++) {
            /* Source strides: i one element, j a row of I, k a plane of J rows. For each j of the box, the
             * (k, i) matrix is transposed into the scratch's (j, i, k) rows; then runs of k move to (i, j, k). */
            const Py_ssize_t *g = items[n].g;
            const Py_ssize_t row = g[0] * size, plane = g[1] * row, volume = g[2] * plane;
            const char *base = (const char *)items[n].view.buf + g[5] * plane + g[4] * row + g[3] * size;
            /* The box in the file's order first, each k plane a cache line further than packed (no two of its
             * rows in one cache set), then transposed in cache. */
            const Py_ssize_t line = sa * size, pitch = sb * line + 64;
            for (Py_ssize_t c = 0; c < channels; c++) {
                const char *from = base + c * volume;
                for (Py_ssize_t k = 0; k < sc; k++)
                    for (Py_ssize_t b = 0; b < sb; b++) memcpy(gathered + k * pitch + b * line, from + k * plane + b * row, (size_t)line);
                for (Py_ssize_t b = 0; b < sb; b++)
                    transpose(gathered + b * line, scratch + b * sa * run, sc, sa, pitch, (Py_ssize_t)run, size);
                for (Py_ssize_t a = 0; a < sa; a++)
                    for (Py_ssize_t b = 0; b < sb; b++) memcpy(out + (a * sb + b) * run, scratch + (b * sa + a) * run, run);
                out += sa * sb * run;
            }
        }
        if (!file_order) {
            struct copy_job job = {items, (char *)dst.buf, count, sa, sb, sc, channels, size};
            run_parts(copy_part, &job, threads);
        }
        Py_END_ALLOW_THREADS
    }
    PyMem_RawFree(allocated);
    result = Py_None;
    Py_INCREF(result);
done:
    if (given.buf != NULL) PyBuffer_Release(&given);
    for (Py_ssize_t n = 0; n < held; n++) PyBuffer_Release(&items[n].view);
    PyMem_Free(items);
    Py_DECREF(seq);
    PyBuffer_Release(&dst);
    return result;
}

/* The arguments write_boxes and blend_boxes share: out, values, the boxes, four strides (checked), threads. */
static int parse_box_arguments(PyObject *args, Py_buffer *out, Py_buffer *values, PyObject **seq, Py_ssize_t strides[4],
                               int alignment, int *threads) {
    PyObject *boxes;
    *threads = 1;
    if (!PyArg_ParseTuple(args, "w*y*Onnnn|i", out, values, &boxes, &strides[0], &strides[1], &strides[2], &strides[3],
                          threads))
        return 0;
    for (int n = 0; n < 4; n++) {
        if (strides[n] < 0 || strides[n] % alignment) {
            PyErr_Format(PyExc_ValueError, alignment > 1 ? "strides must be non-negative multiples of %d bytes"
                                                          : "strides must not be negative", alignment);
            break;
        }
    }
    if (!PyErr_Occurred()) *seq = PySequence_Fast(boxes, "boxes must be a sequence of tuples");
    if (PyErr_Occurred()) {
        PyBuffer_Release(out);
        PyBuffer_Release(values);
        return 0;
    }
    return 1;
}

/* Whether planes x rows runs of run bytes, plane and row bytes apart from offset on, lie within len bytes. */
static int box_inside(Py_ssize_t offset, Py_ssize_t planes, Py_ssize_t rows, Py_ssize_t run, Py_ssize_t plane,
                      Py_ssize_t row, Py_ssize_t len) {
    if (!planes || !rows || !run) return 1;
    planes -= 1;
    rows -= 1;
    if ((planes && plane > (PY_SSIZE_T_MAX - offset) / 2 / planes) || (rows && row > (PY_SSIZE_T_MAX - offset) / 2 / rows))
        return 0;
    return offset + planes * plane + rows * row <= len - run;
}

/* Splitting write_boxes and blend_boxes: part p of n owns a contiguous range of the output's planes (byte x
 * lies in plane x / out_plane) and writes, box after box, only the planes it owns, so each byte is written by
 * one thread in box order. Split only when no box's plane reaches into the next plane of the output
 * (plane_bound), as in a C-contiguous (C, I, J, K) output. */
struct box_parts {
    Py_ssize_t first, last; /* the planes owned */
};

static int plane_bound(Py_ssize_t offset, Py_ssize_t rows, Py_ssize_t run, Py_ssize_t plane, Py_ssize_t row) {
    if (!rows || !run) return 1;
    return plane > 0 && offset % plane <= plane - run - (rows - 1) * row;
}

/* The planes [a0, a1) of a box starting at ``offset`` that part ``owned`` covers. */
static void owned_planes(const struct box_parts *owned, Py_ssize_t offset, Py_ssize_t planes, Py_ssize_t plane,
                         Py_ssize_t *a0, Py_ssize_t *a1) {
    if (plane <= 0) {
        *a0 = 0;
        *a1 = planes;
        return;
    }
    const Py_ssize_t g = offset / plane;
    *a0 = owned->first > g ? owned->first - g : 0;
    *a1 = owned->last - g < planes ? owned->last - g : planes;
    if (*a1 < *a0) *a1 = *a0;
}

static void own_planes(struct box_parts *owned, Py_ssize_t total, Py_ssize_t part, Py_ssize_t parts) {
    if (parts > 1) {
        part_range(total, part, parts, &owned->first, &owned->last);
    } else {
        owned->first = 0;
        owned->last = PY_SSIZE_T_MAX;
    }
}

PyDoc_STRVAR(write_boxes_doc,
             "write_boxes(out, values, boxes, out_plane, out_row, values_plane, values_row, threads=1)\n"
             "--\n\n"
             "Copy boxes of ``values`` into boxes of ``out`` (an aggregator writing patch outputs into a volume).\n\n"
             "Each box is ``(out_offset, values_offset, planes, rows, run)`` in bytes and counts: ``planes`` x\n"
             "``rows`` runs of ``run`` bytes, ``*_row`` bytes apart within a plane and ``*_plane`` bytes apart\n"
             "between planes, starting at the offsets. Every byte must lie inside its buffer. The runs of a box's\n"
             "next plane in ``values`` are prefetched while one is copied (see prefetch_run). Split between ``threads``\n"
             "threads of torch's OpenMP team by the output's planes (see team_init), writing the same bytes.");

/* What write_part and blend_part share: the boxes (each function's own kind), the buffers, the four strides
 * and the output's planes, the last one counted even where the buffer fills it only in part. */
struct box_writes {
    const void *boxes;
    Py_ssize_t count;
    char *out;
    const char *values;
    Py_ssize_t out_plane, out_row, values_plane, values_row, planes;
};

static struct box_writes box_writes_of(const void *boxes, Py_ssize_t count, const Py_buffer *out, const Py_buffer *values,
                                       const Py_ssize_t strides[4]) {
    struct box_writes job = {boxes, count, (char *)out->buf, (const char *)values->buf, strides[0], strides[1],
                             strides[2], strides[3], strides[0] > 0 ? (out->len + strides[0] - 1) / strides[0] : 1};
    return job;
}

/* Boxes n, n+1, ... that start on the same row of the output (patches one after another along K) and span
 * as many planes and rows: the end of the group starting at box n (run = j[4] * item bytes). Written row by
 * row, each row of the output then streams through every box of the group in the boxes' order, rather than
 * as short runs a row apart (the grid benchmark's aggregation of 125 patches of 64^3 into a 256^3 output,
 * 8 channels, one thread, the output's allocation included: blends 140-147 against 185-193 ms, copies 89-95
 * against 123-125 ms; blends prefetch only the output's next plane, a jump the hardware cannot guess, while
 * each patch's values and ratio are read in order: 120-121 against 143-147 ms with all three prefetched, and
 * 113 against 95 ms on two threads with none).
 * Only boxes whose runs stay within a row and whose rows stay within a plane of the output (a C-contiguous
 * (C, I, J, K) output) are grouped: a byte two of them write then has the same plane and row in both, so it
 * still sees them in the boxes' order. */
static int within_rows(const Py_ssize_t *g, Py_ssize_t item, Py_ssize_t out_plane, Py_ssize_t out_row) {
    if (out_row <= 0 || out_plane <= 0 || out_plane % out_row) return 0;
    const Py_ssize_t in_plane = g[0] % out_plane;
    return g[0] % out_row + g[4] * item <= out_row && in_plane / out_row + g[3] <= out_plane / out_row;
}

static Py_ssize_t row_group(const char *boxes, size_t box_bytes, Py_ssize_t n, Py_ssize_t count, Py_ssize_t item,
                            Py_ssize_t out_plane, Py_ssize_t out_row) {
    const Py_ssize_t *first = (const Py_ssize_t *)(boxes + (size_t)n * box_bytes);
    Py_ssize_t m = n + 1;
    if (!within_rows(first, item, out_plane, out_row)) return m;
    for (; m < count; m++) {
        const Py_ssize_t *g = (const Py_ssize_t *)(boxes + (size_t)m * box_bytes);
        if (g[2] != first[2] || g[3] != first[3] || g[0] / out_row != first[0] / out_row ||
            !within_rows(g, item, out_plane, out_row))
            break;
    }
    return m;
}

static void write_part(void *data, Py_ssize_t part, Py_ssize_t parts) {
    const struct box_writes *job = data;
    const Py_ssize_t(*boxes)[5] = job->boxes;
    struct box_parts owned;
    own_planes(&owned, job->planes, part, parts);
    for (Py_ssize_t n = 0, m; n < job->count; n = m) {
        const Py_ssize_t *first = boxes[n];
        m = row_group(job->boxes, sizeof(*boxes), n, job->count, 1, job->out_plane, job->out_row);
        Py_ssize_t a0, a1;
        owned_planes(&owned, first[0], first[2], job->out_plane, &a0, &a1);
        for (Py_ssize_t a = a0; a < a1; a++) {
            for (Py_ssize_t b = 0; b < first[3]; b++) {
                for (Py_ssize_t q = n; q < m; q++) {
                    const Py_ssize_t *j = boxes[q];
                    const size_t run = (size_t)j[4];
                    const char *from = job->values + j[1];
                    if (a + 1 < a1 && run <= PREFETCHED_RUN) /* this row of the next plane */
                        prefetch_run(from + (a + 1) * job->values_plane + b * job->values_row, run);
                    memcpy(job->out + j[0] + a * job->out_plane + b * job->out_row,
                           from + a * job->values_plane + b * job->values_row, run);
                }
            }
        }
    }
}

static PyObject *write_boxes(PyObject *module, PyObject *args) {
    Py_buffer out, values;
    PyObject *seq = NULL, *result = NULL;
    Py_ssize_t strides[4];
    int threads, splittable = 1;
    (void)module;
    if (!parse_box_arguments(args, &out, &values, &seq, strides, 1, &threads)) return NULL;
    const Py_ssize_t out_plane = strides[0], out_row = strides[1], values_plane = strides[2], values_row = strides[3];
    const Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    Py_ssize_t(*jobs)[5] = PyMem_Calloc((size_t)count + 1, sizeof(*jobs));
    if (jobs == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t n = 0; n < count; n++) {
        Py_ssize_t *j = jobs[n];
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, n), "nnnnn;a box is (out_offset, values_offset, planes, rows, run)",
                              &j[0], &j[1], &j[2], &j[3], &j[4]))
            goto done;
        if (j[0] < 0 || j[1] < 0 || j[2] < 0 || j[3] < 0 || j[4] < 0) {
            PyErr_Format(PyExc_ValueError, "box %zd has a negative offset or size", n);
            goto done;
        }
        if (!box_inside(j[0], j[2], j[3], j[4], out_plane, out_row, out.len) ||
            !box_inside(j[1], j[2], j[3], j[4], values_plane, values_row, values.len)) {
            PyErr_Format(PyExc_ValueError, "box %zd reaches past its buffer", n);
            goto done;
        }
        splittable = splittable && plane_bound(j[0], j[3], j[4], out_plane, out_row);
    }
    struct box_writes job = box_writes_of(jobs, count, &out, &values, strides);
    Py_BEGIN_ALLOW_THREADS
    run_parts(write_part, &job, splittable ? threads : 1);
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyMem_Free(jobs);
    Py_XDECREF(seq);
    PyBuffer_Release(&out);
    PyBuffer_Release(&values);
    return result;
}

/* Blending a patch output into the output volume, out += (values - out) * ratio, the way torch's vectorised
 * lerp_ computes it: fmadd(coeff, values - out, base), coeff and base the ratio and out where |ratio| < 0.5,
 * else ratio - 1 and values; so each element is rounded once, as torch's is. Only where the processor has
 * AVX2 and FMA (chosen at run time; x86-64 with GCC or Clang), one row at a time, the output's row of the
 * next plane prefetched. (Plain C for the same loop stays scalar under the default -ftrapping-math.) */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#include <math.h>
#define TORCHPATCH_BLEND 1
__attribute__((target("avx2,fma"))) static void blend_row(float *restrict out, const float *restrict values,
                                                         const float *restrict ratio, Py_ssize_t length) {
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    Py_ssize_t k = 0;
    for (; k + 8 <= length; k += 8) {
        const __m256 start = _mm256_loadu_ps(out + k), end = _mm256_loadu_ps(values + k), w = _mm256_loadu_ps(ratio + k);
        const __m256 low = _mm256_cmp_ps(_mm256_andnot_ps(sign, w), half, _CMP_LT_OQ);
        const __m256 coeff = _mm256_blendv_ps(_mm256_sub_ps(w, one), w, low);
        const __m256 base = _mm256_blendv_ps(end, start, low);
        _mm256_storeu_ps(out + k, _mm256_fmadd_ps(coeff, _mm256_sub_ps(end, start), base));
    }
    for (; k < length; k++) {
        const float start = out[k], end = values[k], w = ratio[k];
        const int low = fabsf(w) < 0.5f;
        out[k] = fmaf(low ? w : w - 1.0f, end - start, low ? start : end);
    }
}

static int blend_supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#else
static int blend_supported(void) { return 0; }
#endif

PyDoc_STRVAR(blend_boxes_doc,
             "blend_boxes(out, values, boxes, out_plane, out_row, values_plane, values_row, threads=1)\n"
             "--\n\n"
             "Blend boxes of float32 ``values`` into boxes of float32 ``out``: out += (values - out) * ratio, as\n"
             "torch's lerp_ rounds it. Each box is ``(ratio, out_offset, values_offset, planes, rows, run)``:\n"
             "``ratio`` a float32 (planes, rows, run) array contiguous along its last axis, offsets in bytes,\n"
             "strides and ``threads`` as in write_boxes. Returns False, writing nothing, where the processor lacks AVX2\n"
             "or FMA.");

struct ratio_box {
    Py_buffer view;
    Py_ssize_t g[5];
};

#ifdef TORCHPATCH_BLEND
static void blend_part(void *data, Py_ssize_t part, Py_ssize_t parts) {
    const struct box_writes *job = data;
    const struct ratio_box *boxes = job->boxes;
    const Py_ssize_t out_plane = job->out_plane, out_row = job->out_row, values_plane = job->values_plane,
                     values_row = job->values_row;
    struct box_parts owned;
    own_planes(&owned, job->planes, part, parts);
    for (Py_ssize_t n = 0, m; n < job->count; n = m) {
        const Py_ssize_t *first = boxes[n].g;
        m = row_group((const char *)boxes + offsetof(struct ratio_box, g), sizeof(*boxes), n, job->count, 4, out_plane,
                      out_row);
        Py_ssize_t a0, a1;
        owned_planes(&owned, first[0], first[2], out_plane, &a0, &a1);
        for (Py_ssize_t a = a0; a < a1; a++) {
            for (Py_ssize_t b = 0; b < first[3]; b++) {
                for (Py_ssize_t q = n; q < m; q++) {
                    const Py_ssize_t *j = boxes[q].g;
                    const Py_buffer *r = &boxes[q].view;
                    char *to = job->out + j[0];
                    const char *from = job->values + j[1], *weights = (const char *)r->buf;
                    if (a + 1 < a1) { /* the output's row one plane on: read, then written */
                        prefetch_lines(to + (a + 1) * out_plane + b * out_row, (size_t)j[4] * 4, 1);
                    }
                    blend_row((float *)(to + a * out_plane + b * out_row),
                              (const float *)(from + a * values_plane + b * values_row),
                              (const float *)(weights + a * r->strides[0] + b * r->strides[1]), j[4]);
                }
            }
        }
    }
}
#endif

static PyObject *blend_boxes(PyObject *module, PyObject *args) {
    Py_buffer out, values;
    PyObject *seq = NULL, *result = NULL;
    Py_ssize_t strides[4], held = 0;
    int threads, splittable = 1;
    (void)module;
    if (!parse_box_arguments(args, &out, &values, &seq, strides, 4, &threads)) return NULL;
    const Py_ssize_t out_plane = strides[0], out_row = strides[1], values_plane = strides[2], values_row = strides[3];
    struct ratio_box *jobs = NULL;
    if (!blend_supported()) {
        result = Py_False;
        Py_INCREF(result);
        goto done;
    }
    const Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    if ((jobs = PyMem_Calloc((size_t)count + 1, sizeof(*jobs))) == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t n = 0; n < count; n++) {
        PyObject *ratio;
        Py_ssize_t *j = jobs[n].g;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, n),
                              "Onnnnn;a box is (ratio, out_offset, values_offset, planes, rows, run)", &ratio, &j[0],
                              &j[1], &j[2], &j[3], &j[4]))
            goto done;
        if (PyObject_GetBuffer(ratio, &jobs[n].view, PyBUF_STRIDED_RO | PyBUF_FORMAT) < 0) goto done;
        held = n + 1;
        const Py_buffer *r = &jobs[n].view;
        if (r->ndim != 3 || r->itemsize != 4 || r->format == NULL || strcmp(r->format, "f") != 0 ||
            r->shape[0] != j[2] || r->shape[1] != j[3] || r->shape[2] != j[4] || (j[4] > 1 && r->strides[2] != 4) ||
            r->strides[0] < 0 || r->strides[1] < 0 || r->strides[0] % 4 || r->strides[1] % 4) {
            PyErr_Format(PyExc_ValueError, "box %zd: its ratio must be a float32 (%zd, %zd, %zd) array contiguous along its last axis",
                         n, j[2], j[3], j[4]);
            goto done;
        }
        if (j[0] < 0 || j[1] < 0 || j[2] < 0 || j[3] < 0 || j[4] < 0 || j[0] % 4 || j[1] % 4) {
            PyErr_Format(PyExc_ValueError, "box %zd has a negative or misaligned offset or size", n);
            goto done;
        }
        if (!box_inside(j[0], j[2], j[3], j[4] * 4, out_plane, out_row, out.len) ||
            !box_inside(j[1], j[2], j[3], j[4] * 4, values_plane, values_row, values.len)) {
            PyErr_Format(PyExc_ValueError, "box %zd reaches past its buffer", n);
            goto done;
        }
        splittable = splittable && plane_bound(j[0], j[3], j[4] * 4, out_plane, out_row);
    }
#ifdef TORCHPATCH_BLEND
    struct box_writes job = box_writes_of(jobs, count, &out, &values, strides);
    Py_BEGIN_ALLOW_THREADS
    run_parts(blend_part, &job, splittable ? threads : 1);
    Py_END_ALLOW_THREADS
#endif
    result = Py_True;
    Py_INCREF(result);
done:
    for (Py_ssize_t n = 0; n < held; n++) PyBuffer_Release(&jobs[n].view);
    PyMem_Free(jobs);
    Py_XDECREF(seq);
    PyBuffer_Release(&out);
    PyBuffer_Release(&values);
    return result;
}

/* Label runs: a label volume's runs of equal non-zero elements (in flat C order, each run as long as it goes),
 * grouped by value in increasing order and by start within each value: the decode-once cache's label index,
 * from which the label sampler reads the k-th voxel of a class. Two passes over the runs: the first counts
 * each value's runs, the second writes each run where its value's group continues. A 160 x 192 x 160 uint8 CT
 * label map (1.5 M non-zero voxels in 29 000 runs): 4.4 ms; numpy's stable argsort of its non-zero voxels'
 * values (the flat positions the index held before, 12 MB a subject) took 20 ms, 50 ms with its temporaries
 * faulted in fresh as in a Queue worker. */
#define LABEL_RUNS(T, BODY)                                                         \
    {                                                                               \
        const T *s = (const T *)src;                                                \
        Py_ssize_t i = 0;                                                           \
        while (i < n) {                                                             \
            const T v = s[i];                                                       \
            Py_ssize_t j = i + 1;                                                   \
            while (j < n && s[j] == v) j++;                                         \
            const long long value = (long long)v;                                   \
            BODY                                                                    \
            i = j;                                                                  \
        }                                                                           \
    }
#define LABEL_TYPES(BODY)                                                           \
    switch (size * 2 + (is_signed != 0)) {                                          \
    case 2: LABEL_RUNS(unsigned char, BODY) break;                                  \
    case 3: LABEL_RUNS(signed char, BODY) break;                                    \
    case 4: LABEL_RUNS(unsigned short, BODY) break;                                 \
    case 5: LABEL_RUNS(short, BODY) break;                                          \
    case 8: LABEL_RUNS(unsigned int, BODY) break;                                   \
    case 9: LABEL_RUNS(int, BODY) break;                                            \
    case 16: LABEL_RUNS(unsigned long long, BODY) break;                            \
    default: LABEL_RUNS(long long, BODY) break;                                     \
    }

/* Add each value's runs to counts[value - low]; return the elements outside [low, low + span) (a value of 2^63
 * or more in an unsigned source counts as outside). */
static Py_ssize_t count_label_runs(const char *src, Py_ssize_t n, int size, int is_signed, long long low,
                                   long long *counts, Py_ssize_t span) {
    Py_ssize_t outside = 0;
    const int huge = size == 8 && !is_signed;
    LABEL_TYPES({
        if ((huge && value < 0) || value < low || value - low >= span)
            outside += j - i;
        else
            counts[value - low] += 1;
    })
    return outside;
}

/* Write each non-zero run (start, length) at runs[next[value - low]] (advanced); every value is in range. */
static void place_label_runs(const char *src, Py_ssize_t n, int size, int is_signed, long long low, long long *next,
                             long long *runs) {
    LABEL_TYPES({
        if (value != 0) {
            long long *to = runs + 2 * next[value - low]++;
            to[0] = i;
            to[1] = j - i;
        }
    })
}

PyDoc_STRVAR(label_runs_doc,
             "label_runs(source, itemsize, signed, low, counts)\n"
             "--\n\n"
             "The runs of equal non-zero elements of ``source`` (integers of ``itemsize`` bytes, signed or not),\n"
             "grouped by value in increasing order and by start within a group: (start, length) int64 pairs in a\n"
             "bytearray. ``counts`` (int64, zeros, one per value from ``low``) receives each value's runs.\n"
             "``None`` when a value lies outside those (nothing else is written then but ``counts``).");

static PyObject *label_runs(PyObject *module, PyObject *args) {
    Py_buffer src, counts;
    int size, is_signed;
    long long low;
    (void)module;
    if (!PyArg_ParseTuple(args, "y*ipLw*", &src, &size, &is_signed, &low, &counts)) return NULL;
    PyObject *result = NULL;
    long long *next = NULL;
    const Py_ssize_t span = counts.len / (Py_ssize_t)sizeof(long long);
    if (!itemsize_ok(size)) goto done;
    const Py_ssize_t n = src.len / size;
    long long *count = (long long *)counts.buf;
    Py_ssize_t outside;
    Py_BEGIN_ALLOW_THREADS
    outside = count_label_runs((const char *)src.buf, n, size, is_signed, low, count, span);
    Py_END_ALLOW_THREADS
    if (outside) {
        result = Py_None;
        Py_INCREF(result);
        goto done;
    }
    next = PyMem_Malloc((span ? (size_t)span : 1) * sizeof(long long));
    if (next == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    long long total = 0;
    for (Py_ssize_t v = 0; v < span; v++) {
        next[v] = total;
        if (low + v != 0) total += count[v];
    }
    result = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)(total * 2 * (long long)sizeof(long long)));
    if (result == NULL) goto done;
    Py_BEGIN_ALLOW_THREADS
    place_label_runs((const char *)src.buf, n, size, is_signed, low, next, (long long *)PyByteArray_AS_STRING(result));
    Py_END_ALLOW_THREADS
done:
    PyMem_Free(next);
    PyBuffer_Release(&src);
    PyBuffer_Release(&counts);
    return result;
}

static PyMethodDef methods[] = {
    {"reverse", reverse, METH_VARARGS, reverse_doc},
    {"team_init", team_init, METH_VARARGS, team_init_doc},
    {"blend_boxes", blend_boxes, METH_VARARGS, blend_boxes_doc},
    {"copy_boxes", copy_boxes, METH_VARARGS, copy_boxes_doc},
    {"write_boxes", write_boxes, METH_VARARGS, write_boxes_doc},
    {"label_runs", label_runs, METH_VARARGS, label_runs_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "torchpatch.io.transpose",
    "Compiled copies: volumes reordered from the files' order into C order, boxes into batches.",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit_transpose(void) { return PyModule_Create(&module_def); }
