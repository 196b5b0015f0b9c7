/* Decoding the second part of one deflate stream while another thread decodes the first (torchpatch.io.gzsplit).
 *
 * A gzip member is one deflate stream: a back-reference may reach 32 KiB behind, so a decoder started in the
 * middle does not know the bytes its first back-references copy. This module lets a second thread start there
 * anyway (torchpatch/io/libdeflate.py puts the parts together):
 *
 *   find_block  looks for a dynamic-Huffman block header at or after a bit position (blocks are not byte-aligned)
 *               and decodes that block into 16-bit symbols: a byte (0-255), or MARKER + w, "byte w of the 32 KiB
 *               before the block", not known yet;
 *   decode      goes on block after block through the final one (copies of markers copy the markers);
 *   resolve     turns the symbols into bytes once the 32 KiB before them are known;
 *   crc32_combine  the CRC32 of two runs end to end (parts resolved by either thread are checked apart).
 *
 * Markers stay common to the end on CT-like data (copies of copies of the first bytes), so the whole part is
 * decoded this way, 1.2-1.6x libdeflate's time per byte. A wrongly guessed block start fails in decoding
 * (invalid codes, a distance beyond the window) or, at the end, in the gzip trailer's CRC32 and size check; the
 * caller then decodes the file whole.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define WINDOW 32768
#define MARKER 256
#define MAX_BITS 15

static const uint16_t LENGTH_BASE[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                         31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t LENGTH_EXTRA[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                         2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t DIST_BASE[30] = {1,    2,    3,    4,    5,    7,     9,     13,    17,  25,
                                       33,   49,   65,   97,   129,  193,   257,   385,   513, 769,
                                       1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const uint8_t DIST_EXTRA[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6,
                                       6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
static const uint8_t CODE_ORDER[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};

/* Bits of the compressed buffer, least significant first; reads past the end give zeros and are caught by
 * comparing the position with the buffer's length. */
typedef struct {
    const uint8_t *data;
    uint64_t bits; /* length in bits */
    uint64_t pos;  /* next bit */
} Reader;

static inline uint64_t peek(const Reader *r, int count) {
    const uint64_t byte = r->pos >> 3;
    const uint64_t size = r->bits >> 3;
    uint64_t word = 0;
    if (byte + 8 <= size) {
        memcpy(&word, r->data + byte, 8);
    } else {
        for (uint64_t i = 0; byte + i < size && i < 8; i++) word |= (uint64_t)r->data[byte + i] << (8 * i);
    }
    return (word >> (r->pos & 7)) & ((1ULL << count) - 1);
}

static inline uint64_t take(Reader *r, int count) {
    const uint64_t value = count ? peek(r, count) : 0;
    r->pos += (uint64_t)count;
    return value;
}

static inline unsigned reverse_bits(unsigned code, int length) {
    unsigned out = 0;
    for (int i = 0; i < length; i++, code >>= 1) out = (out << 1) | (code & 1);
    return out;
}

/* The code space ``count`` code lengths leave unused, in units of 2^-MAX_BITS (0: complete); -1 if they
 * over-subscribe it. ``*used``: how many symbols have a code; ``*one_bit``: how many codes are one bit long. */
static int code_space_left(const uint8_t *lengths, int count, int *used, int *one_bit) {
    int per_length[MAX_BITS + 1] = {0}, left = 1;
    for (int s = 0; s < count; s++) per_length[lengths[s]]++;
    *used = count - per_length[0];
    *one_bit = per_length[1];
    for (int l = 1; l <= MAX_BITS; l++) {
        left = 2 * left - per_length[l];
        if (left < 0) return -1;
    }
    return left;
}

/* Whether ``count`` code lengths make a code deflate decoders accept: not over-subscribed, and complete unless
 * it is a single code of one bit, or no code at all where ``empty_ok`` (a block without distances). */
static int code_ok(const uint8_t *lengths, int count, int empty_ok) {
    int used, one_bit;
    const int left = code_space_left(lengths, count, &used, &one_bit);
    if (left < 0) return 0;
    if (used == 0) return empty_ok;
    return left == 0 || (used == 1 && one_bit == 1);
}

/* Decoding tables, one 32-bit entry per index of a code's first bits (the stream's next bits, least significant
 * first):  bits 0-4 the bits the code takes, 5-7 its kind, 8-12 the extra bits after it (or a subtable's index
 * bits), 16-31 its value (a byte, a length or distance base, a subtable's offset). 0: no code starts so. */
#define KIND_LITERAL (0U << 5)
#define KIND_COPY (1U << 5)
#define KIND_END (2U << 5)
#define KIND_SUBTABLE (3U << 5)
#define KIND_INVALID (4U << 5)
#define KIND(e) ((e) & (7U << 5))
#define LITERAL_BITS 11
#define DISTANCE_BITS 8

typedef struct {
    uint32_t literal[(1 << LITERAL_BITS) + (1 << MAX_BITS)];
    uint32_t distance[(1 << DISTANCE_BITS) + (1 << MAX_BITS)];
} Tables;

/* Fill ``table`` (``primary`` index bits, subtables after) for the code of ``lengths``; ``entries`` gives each
 * symbol's entry without its code length. Codes longer than ``primary`` bits share, per primary index, a
 * subtable indexed by the bits after it. */
static void fill_table(uint32_t *table, int primary, const uint8_t *lengths, int count, const uint32_t *entries) {
    int per_length[MAX_BITS + 1] = {0}, longest = 0;
    for (int s = 0; s < count; s++) per_length[lengths[s]]++;
    per_length[0] = 0;
    for (int l = 1; l <= MAX_BITS; l++)
        if (per_length[l]) longest = l;
    unsigned next[MAX_BITS + 2];
    next[1] = 0;
    for (int l = 1; l < MAX_BITS; l++) next[l + 1] = (next[l] + (unsigned)per_length[l]) << 1;
    const unsigned size = 1U << primary, sub_bits = longest > primary ? (unsigned)(longest - primary) : 0;
    memset(table, 0, sizeof(uint32_t) * size);
    unsigned used = size;
    for (int s = 0; s < count; s++) {
        const int l = lengths[s];
        if (!l) continue;
        const unsigned r = reverse_bits(next[l]++, l), entry = entries[s] | (unsigned)l;
        if (l <= primary) {
            for (unsigned i = r; i < size; i += 1U << l) table[i] = entry;
            continue;
        }
        const unsigned head = r & (size - 1);
        if (table[head] == 0) { /* a new subtable for this primary index */
            table[head] = (used << 16) | (sub_bits << 8) | KIND_SUBTABLE;
            memset(table + used, 0, sizeof(uint32_t) << sub_bits);
            used += 1U << sub_bits;
        }
        uint32_t *sub = table + (table[head] >> 16);
        for (unsigned i = r >> primary; i < (1U << sub_bits); i += 1U << (l - primary)) sub[i] = entry;
    }
}

/* Where entry ``e`` (what ``buf``'s first ``primary`` bits index in ``table``) points to a subtable, replace it
 * by the subtable's entry at the bits after them. A macro: as an inline function the decoder ran 3 % slower. */
#define SUBTABLE_ENTRY(e, table, primary, buf)                                                \
    do {                                                                                      \
        if (KIND(e) == KIND_SUBTABLE)                                                         \
            (e) = (table)[((e) >> 16) + (((buf) >> (primary)) & ((1U << (((e) >> 8) & 31)) - 1))]; \
    } while (0)

static void literal_tables(Tables *t, const uint8_t *lengths, int literals, int distances) {
    uint32_t entries[288];
    for (int s = 0; s < 256; s++) entries[s] = (uint32_t)s << 16 | KIND_LITERAL;
    entries[256] = KIND_END;
    for (int s = 257; s < 286; s++)
        entries[s] = (uint32_t)LENGTH_BASE[s - 257] << 16 | (uint32_t)LENGTH_EXTRA[s - 257] << 8 | KIND_COPY;
    entries[286] = entries[287] = KIND_INVALID; /* codes a fixed block has, no length */
    fill_table(t->literal, LITERAL_BITS, lengths, literals, entries);
    uint32_t dist_entries[30];
    for (int s = 0; s < 30; s++)
        dist_entries[s] = (uint32_t)DIST_BASE[s] << 16 | (uint32_t)DIST_EXTRA[s] << 8 | KIND_COPY;
    fill_table(t->distance, DISTANCE_BITS, lengths + literals, distances, dist_entries);
}

/* Read a dynamic block's header (after BFINAL and BTYPE) and build its tables; -1 if it is not a valid one. */
static int read_dynamic(Reader *r, Tables *t) {
    if (r->pos + 14 > r->bits) return -1;
    const int literals = (int)take(r, 5) + 257, distances = (int)take(r, 5) + 1, codes = (int)take(r, 4) + 4;
    if (literals > 286 || distances > 30) return -1;
    uint8_t code_lengths[19] = {0};
    for (int i = 0; i < codes; i++) code_lengths[CODE_ORDER[i]] = (uint8_t)take(r, 3);
    /* zlib and libdeflate want the code-length code complete */
    int used, one_bit;
    if (code_space_left(code_lengths, 19, &used, &one_bit) != 0) return -1;
    uint32_t small[1 << 7], entries[19]; /* the code-length code: every 7-bit index holds a code */
    for (int s = 0; s < 19; s++) entries[s] = (uint32_t)s << 16;
    fill_table(small, 7, code_lengths, 19, entries);
    uint8_t lengths[286 + 30];
    int filled = 0;
    while (filled < literals + distances) {
        const uint32_t entry = small[peek(r, 7)];
        r->pos += entry & 31;
        const int symbol = (int)(entry >> 16);
        if (symbol < 16) {
            lengths[filled++] = (uint8_t)symbol;
            continue;
        }
        int repeat;
        uint8_t value = 0;
        if (symbol == 16) {
            if (filled == 0) return -1;
            value = lengths[filled - 1];
            repeat = 3 + (int)take(r, 2);
        } else if (symbol == 17) {
            repeat = 3 + (int)take(r, 3);
        } else {
            repeat = 11 + (int)take(r, 7);
        }
        if (filled + repeat > literals + distances) return -1;
        memset(lengths + filled, value, (size_t)repeat);
        filled += repeat;
    }
    if (r->pos > r->bits || lengths[256] == 0) return -1;
    if (!code_ok(lengths, literals, 0) || !code_ok(lengths + literals, distances, 1)) return -1;
    literal_tables(t, lengths, literals, distances);
    return 0;
}

static void fixed_tables(Tables *t) {
    uint8_t lengths[288 + 30];
    memset(lengths, 8, 144);
    memset(lengths + 144, 9, 112);
    memset(lengths + 256, 7, 24);
    memset(lengths + 280, 8, 8);
    memset(lengths + 288, 5, 30);
    literal_tables(t, lengths, 288, 30);
}

/* Where the symbols go: out[0 .. capacity), the last SLACK entries written only as scratch by the copies. */
#define SLACK 16
typedef struct {
    uint16_t *out;
    Py_ssize_t count, capacity;
} Sink;

/* Decode one block's symbols (its header read into ``t``) into ``sink``: -1 on anything invalid. */
static int decode_codes(Reader *r, const Tables *t, Sink *sink) {
    const uint8_t *in = r->data;
    const uint64_t size = r->bits >> 3;
    uint64_t at = r->pos >> 3; /* next byte to load */
    uint64_t buf = 0;
    int held = 0;
    /* start on the reader's bit */
    {
        const int skip = (int)(r->pos & 7);
        for (int i = 0; i < 7; i++, at++) buf |= (uint64_t)(at < size ? in[at] : 0) << (8 * i);
        buf >>= skip;
        held = 56 - skip; /* below 64: a refill shifts by it */
    }
    uint16_t *out = sink->out;
    Py_ssize_t n = sink->count;
    const Py_ssize_t limit = sink->capacity - SLACK;
    const uint32_t *lit = t->literal, *dist = t->distance;
/* Refilled before every code, without a branch on the bits held while 8 bytes can be loaded; at least 48 bits
 * (a length code, its extra bits, a distance code and its extra bits) after it. */
#define REFILL()                                                               \
    do {                                                                       \
        if (at + 8 <= size) {                                                  \
            uint64_t word;                                                     \
            memcpy(&word, in + at, 8);                                         \
            buf |= word << held;                                               \
            at += (uint64_t)(63 - held) >> 3;                                  \
            held |= 56;                                                        \
        } else {                                                               \
            if (at > size + 16) return -1; /* long past the end: damage */     \
            while (held <= 56) {                                               \
                buf |= (uint64_t)(at < size ? in[at] : 0) << held;             \
                at++;                                                          \
                held += 8;                                                     \
            }                                                                  \
        }                                                                      \
    } while (0)
    REFILL();
    /* the next code's entry is looked up as soon as its bits are known (before a copy is written), so that the
     * lookup overlaps the copy */
    uint32_t e = lit[buf & ((1U << LITERAL_BITS) - 1)];
    for (;;) {
        SUBTABLE_ENTRY(e, lit, LITERAL_BITS, buf);
        const int bits = (int)(e & 31);
        if (!bits) return -1;
        buf >>= bits;
        held -= bits;
        if (KIND(e) == KIND_LITERAL) {
            if (n >= limit) return -1;
            out[n++] = (uint16_t)(e >> 16);
            /* 33 bits or more are left: the next entry is looked up before the refill (which only adds bits
             * above them), so that the two overlap */
            e = lit[buf & ((1U << LITERAL_BITS) - 1)];
            REFILL();
            continue;
        }
        if (KIND(e) == KIND_END) break;
        if (KIND(e) != KIND_COPY) return -1;
        unsigned extra = (e >> 8) & 31;
        const Py_ssize_t length = (Py_ssize_t)(e >> 16) + (Py_ssize_t)(buf & ((1U << extra) - 1));
        buf >>= extra;
        held -= (int)extra;
        uint32_t d = dist[buf & ((1U << DISTANCE_BITS) - 1)];
        SUBTABLE_ENTRY(d, dist, DISTANCE_BITS, buf);
        const int dbits = (int)(d & 31);
        if (!dbits) return -1;
        buf >>= dbits;
        held -= dbits;
        extra = (d >> 8) & 31;
        const Py_ssize_t distance = (Py_ssize_t)(d >> 16) + (Py_ssize_t)(buf & ((1U << extra) - 1));
        buf >>= extra;
        held -= (int)extra;
        REFILL();
        e = lit[buf & ((1U << LITERAL_BITS) - 1)];
        if (distance > n + WINDOW || n + length > limit) return -1;
        uint16_t *to = out + n;
        const uint16_t *from = to - distance;
        if (distance > n) { /* reaches into the unknown window: markers */
            for (Py_ssize_t i = 0; i < length; i++) {
                const Py_ssize_t source = n + i - distance;
                to[i] = source < 0 ? (uint16_t)(MARKER + WINDOW + source) : out[source];
            }
        } else if (distance >= 8) { /* 8 symbols a move, in order (each reads what the ones before wrote) */
            for (Py_ssize_t i = 0; i < length; i += 16) {
                memcpy(to + i, from + i, 16);
                memcpy(to + i + 8, from + i + 8, 16);
            }
        } else {
            /* a period shorter than 8 (a run of air: 2 for int16): 8 symbols of the pattern written at steps of
             * whole periods, two steps at a time */
            uint16_t pattern[8];
            for (int i = 0; i < 8; i++) pattern[i] = from[i % distance];
            const Py_ssize_t step = distance * (8 / distance);
            for (Py_ssize_t i = 0; i < length; i += 2 * step) {
                memcpy(to + i, pattern, 16);
                memcpy(to + i + step, pattern, 16);
            }
        }
        n += length;
    }
#undef REFILL
    r->pos = 8 * at - (uint64_t)held;
    sink->count = n;
    return r->pos <= r->bits ? 0 : -1;
}

/* One block from its first bit; sets *final. -1 if invalid. */
static int decode_block(Reader *r, Tables *tables, Sink *sink, int *final) {
    if (r->pos + 3 > r->bits) return -1;
    *final = (int)take(r, 1);
    const int type = (int)take(r, 2);
    if (type == 0) {
        r->pos = (r->pos + 7) & ~(uint64_t)7;
        if (r->pos + 32 > r->bits) return -1;
        const unsigned length = (unsigned)take(r, 16), check = (unsigned)take(r, 16);
        if ((length ^ 0xFFFF) != check) return -1;
        if (r->pos + 8ULL * length > r->bits || sink->count + length > sink->capacity - SLACK) return -1;
        const uint8_t *from = r->data + (r->pos >> 3);
        for (unsigned i = 0; i < length; i++) sink->out[sink->count++] = from[i];
        r->pos += 8ULL * length;
        return 0;
    }
    if (type == 1) {
        fixed_tables(tables);
    } else if (type == 2) {
        if (read_dynamic(r, tables) < 0) return -1;
    } else {
        return -1;
    }
    return decode_codes(r, tables, sink);
}

typedef struct {
    Py_buffer data, out;
    Reader reader;
    Sink sink;
    Tables *tables;
} Call;

static int open_call(Call *c, PyObject *data, PyObject *out) {
    memset(c, 0, sizeof(*c));
    c->tables = (Tables *)PyMem_RawMalloc(sizeof(Tables));
    if (!c->tables) {
        PyErr_NoMemory();
        return -1;
    }
    if (PyObject_GetBuffer(data, &c->data, PyBUF_SIMPLE) < 0) {
        PyMem_RawFree(c->tables);
        return -1;
    }
    if (PyObject_GetBuffer(out, &c->out, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) {
        PyBuffer_Release(&c->data);
        PyMem_RawFree(c->tables);
        return -1;
    }
    c->reader.data = (const uint8_t *)c->data.buf;
    c->reader.bits = 8ULL * (uint64_t)c->data.len;
    c->sink.out = (uint16_t *)c->out.buf;
    c->sink.capacity = c->out.len / 2;
    return 0;
}

static void close_call(Call *c) {
    PyMem_RawFree(c->tables);
    PyBuffer_Release(&c->data);
    PyBuffer_Release(&c->out);
}

/* KRAFT[i]: the code space four 3-bit code lengths (i's bits, the first lowest) take, in units of 2^-7. */
static uint16_t KRAFT[4096];

static void kraft_table(void) {
    for (int i = 0; i < 4096; i++) {
        int space = 0;
        for (int j = 0; j < 4; j++) {
            const int l = (i >> (3 * j)) & 7;
            if (l) space += 128 >> l;
        }
        KRAFT[i] = (uint16_t)space;
    }
}

/* Whether the block after the one just decoded starts with a valid header (a guessed start that decoded by
 * chance is rarely followed by one). Leaves the reader where it was. */
static int next_block_ok(Call *c) {
    Reader r = c->reader;
    if (r.pos + 3 > r.bits) return 0;
    (void)take(&r, 1);
    const int type = (int)take(&r, 2);
    if (type == 0) {
        r.pos = (r.pos + 7) & ~(uint64_t)7;
        if (r.pos + 32 > r.bits) return 0;
        const unsigned length = (unsigned)take(&r, 16), check = (unsigned)take(&r, 16);
        return (length ^ 0xFFFF) == check;
    }
    return type == 1 || (type == 2 && read_dynamic(&r, c->tables) == 0);
}

/* Symbols a guessed block may decode to (zlib's largest blocks: 32 Ki codes of 258 bytes, 8.5 M). */
#define GUESSED_BLOCK_SYMBOLS (1 << 24)

/* find_block(data, first_bit, last_bit, out) -> (start_bit, end_bit, count) or None
 * The first bit in [first_bit, last_bit) where a dynamic block (not the last) starts that decodes into out (its
 * back-references into the 32 KiB before it as markers) and is followed by a block of a valid type. */
static PyObject *find_block(PyObject *module, PyObject *args) {
    PyObject *data, *out;
    unsigned long long first, last;
    (void)module;
    if (!PyArg_ParseTuple(args, "OKKO", &data, &first, &last, &out)) return NULL;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    Py_RETURN_NONE; /* the bit reader loads little-endian words: the caller decodes whole */
#endif
    Call c;
    if (open_call(&c, data, out) < 0) return NULL;
    long long found = -1;
    const Py_ssize_t capacity = c.sink.capacity;
    if (last > c.reader.bits) last = c.reader.bits;
    Py_BEGIN_ALLOW_THREADS
    uint64_t word = 0;
    for (uint64_t bit = first; bit < last; bit++) {
        if (bit == first || (bit & 7) == 0) { /* one load serves a byte's 8 starting bits */
            c.reader.pos = bit & ~(uint64_t)7;
            word = peek(&c.reader, 56);
        }
        /* BFINAL 0, BTYPE 2 (dynamic), HLIT <= 29, HDIST <= 29: the cheap tests first */
        const uint64_t head = (word >> (bit & 7)) & ((1U << 17) - 1);
        if ((head & 7) != 4 || ((head >> 3) & 31) > 29 || ((head >> 8) & 31) > 29) continue;
        {   /* the code-length code's lengths must fill the code space exactly (Kraft's sum, 7-bit units), summed
             * four 3-bit lengths at a time */
            const int codes = (int)((head >> 13) & 15) + 4;
            c.reader.pos = bit + 17;
            const uint64_t word = peek(&c.reader, 57) & ((1ULL << (3 * codes)) - 1);
            const int space = KRAFT[word & 4095] + KRAFT[(word >> 12) & 4095] + KRAFT[(word >> 24) & 4095] +
                              KRAFT[(word >> 36) & 4095] + KRAFT[(word >> 48) & 4095];
            if (space != 128) continue;
        }
        c.reader.pos = bit + 3;
        c.sink.count = 0;
        /* a guess that decodes noise runs until an end-of-block code comes up: bounded, above real blocks' output */
        c.sink.capacity = capacity < GUESSED_BLOCK_SYMBOLS ? capacity : GUESSED_BLOCK_SYMBOLS;
        if (read_dynamic(&c.reader, c.tables) < 0) continue;
        if (decode_codes(&c.reader, c.tables, &c.sink) < 0) continue;
        if (!next_block_ok(&c)) continue;
        found = (long long)bit;
        break;
    }
    Py_END_ALLOW_THREADS
    PyObject *result = found < 0 ? Py_NewRef(Py_None)
                                 : Py_BuildValue("KKn", (unsigned long long)found,
                                                 (unsigned long long)c.reader.pos, c.sink.count);
    close_call(&c);
    return result;
}

/* decode(data, bit, out, count, progress, stop_bit=0) -> (end_bit, count) or None
 * Blocks from ``bit`` on, appended to out[count:], through the stream's final block, or up to the block that
 * starts at ``stop_bit`` (another part's, found by find_block: a block must end exactly there). After each block
 * the symbols decoded so far are published in progress[0] (an int64): another thread may resolve those
 * meanwhile, since later blocks only read them. */
static PyObject *decode(PyObject *module, PyObject *args) {
    PyObject *data, *out;
    Py_buffer progress;
    unsigned long long bit, stop = 0;
    Py_ssize_t count;
    (void)module;
    if (!PyArg_ParseTuple(args, "OKOnw*|K", &data, &bit, &out, &count, &progress, &stop)) return NULL;
    if (progress.len < 8 || ((uintptr_t)progress.buf & 7)) {
        PyBuffer_Release(&progress);
        PyErr_SetString(PyExc_ValueError, "progress must be an aligned int64");
        return NULL;
    }
    Call c;
    if (open_call(&c, data, out) < 0) {
        PyBuffer_Release(&progress);
        return NULL;
    }
    PyObject *result = NULL;
    if (count < 0 || count > c.sink.capacity) {
        PyErr_SetString(PyExc_ValueError, "count must lie within out");
    } else {
        int64_t *published = (int64_t *)progress.buf;
        c.reader.pos = bit;
        c.sink.count = count;
        int final = 0, ok = stop && bit == stop; /* nothing between this part's first block and the next part */
        Py_BEGIN_ALLOW_THREADS
        while (!ok && decode_block(&c.reader, c.tables, &c.sink, &final) == 0) {
#if defined(__GNUC__)
            __atomic_store_n(published, (int64_t)c.sink.count, __ATOMIC_RELEASE);
#else
            *(volatile int64_t *)published = (int64_t)c.sink.count;
#endif
            if (stop ? c.reader.pos >= stop : final) {
                ok = !stop || (c.reader.pos == stop && !final);
                break;
            }
        }
        Py_END_ALLOW_THREADS
        result = ok ? Py_BuildValue("Kn", (unsigned long long)c.reader.pos, c.sink.count) : Py_NewRef(Py_None);
    }
    close_call(&c);
    PyBuffer_Release(&progress);
    return result;
}

/* published(progress) -> the symbols decode() has published so far. */
static PyObject *published(PyObject *module, PyObject *arg) {
    Py_buffer progress;
    (void)module;
    if (PyObject_GetBuffer(arg, &progress, PyBUF_SIMPLE) < 0) return NULL;
    if (progress.len < 8 || ((uintptr_t)progress.buf & 7)) {
        PyBuffer_Release(&progress);
        PyErr_SetString(PyExc_ValueError, "progress must be an aligned int64");
        return NULL;
    }
#if defined(__GNUC__)
    const int64_t value = __atomic_load_n((int64_t *)progress.buf, __ATOMIC_ACQUIRE);
#else
    const int64_t value = *(volatile int64_t *)progress.buf;
#endif
    PyBuffer_Release(&progress);
    return PyLong_FromLongLong((long long)value);
}

/* resolve(symbols, window, out): out[i] = symbols[i] where a byte, else the window's byte it marks. */
static PyObject *resolve(PyObject *module, PyObject *args) {
    Py_buffer symbols, window, out;
    (void)module;
    if (!PyArg_ParseTuple(args, "y*y*w*", &symbols, &window, &out)) return NULL;
    PyObject *result = NULL;
    const Py_ssize_t count = out.len;
    if (symbols.len != 2 * count || window.len != WINDOW) {
        PyErr_Format(PyExc_ValueError, "resolve: %zd bytes out need %zd bytes of symbols and a %d-byte window; got %zd "
                     "and %zd", count, 2 * count, WINDOW, symbols.len, window.len);
    } else {
        const uint16_t *s = (const uint16_t *)symbols.buf;
        const uint8_t *w = (const uint8_t *)window.buf;
        uint8_t *o = (uint8_t *)out.buf;
        Py_BEGIN_ALLOW_THREADS
        Py_ssize_t i = 0;
        for (; i + 16 <= count; i += 16) {
            unsigned any = 0;
            for (int j = 0; j < 16; j++) any |= s[i + j];
            if (any < MARKER) {
                for (int j = 0; j < 16; j++) o[i + j] = (uint8_t)s[i + j];
            } else {
                for (int j = 0; j < 16; j++) {
                    const uint16_t v = s[i + j];
                    const uint8_t marked = w[(v - MARKER) & (WINDOW - 1)];
                    o[i + j] = v < MARKER ? (uint8_t)v : marked;
                }
            }
        }
        for (; i < count; i++) o[i] = s[i] < MARKER ? (uint8_t)s[i] : w[(s[i] - MARKER) & (WINDOW - 1)];
        Py_END_ALLOW_THREADS
        result = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&symbols);
    PyBuffer_Release(&window);
    PyBuffer_Release(&out);
    return result;
}

/* crc32_combine(crc_a, crc_b, length_b): the CRC32 of a followed by b. Appending b multiplies a's remainder by
 * x^(8 length_b) modulo the polynomial (the conditioning of both CRCs cancels): here by repeated squaring of the
 * 32x32 GF(2) matrix of "append one zero bit" (reflected polynomial 0xEDB88320), then b's CRC added. */
static uint32_t gf2_times(const uint32_t *matrix, uint32_t vector) {
    uint32_t sum = 0;
    for (int i = 0; vector; i++, vector >>= 1)
        if (vector & 1) sum ^= matrix[i];
    return sum;
}

static void gf2_square(uint32_t *square, const uint32_t *matrix) {
    for (int i = 0; i < 32; i++) square[i] = gf2_times(matrix, matrix[i]);
}

static PyObject *crc32_combine(PyObject *module, PyObject *args) {
    unsigned long crc_a, crc_b;
    unsigned long long length;
    (void)module;
    if (!PyArg_ParseTuple(args, "kkK", &crc_a, &crc_b, &length)) return NULL;
    uint32_t crc = (uint32_t)crc_a, power[32], next[32];
    power[0] = 0xEDB88320U; /* one zero bit */
    for (int i = 1; i < 32; i++) power[i] = 1U << (i - 1);
    for (int i = 0; i < 3; i++) { /* one zero byte */
        gf2_square(next, power);
        memcpy(power, next, sizeof(power));
    }
    for (; length; length >>= 1) { /* power: 2^k zero bytes */
        if (length & 1) crc = gf2_times(power, crc);
        gf2_square(next, power);
        memcpy(power, next, sizeof(power));
    }
    return PyLong_FromUnsignedLong((unsigned long)(crc ^ (uint32_t)crc_b));
}

static PyMethodDef methods[] = {
    {"crc32_combine", crc32_combine, METH_VARARGS, "The CRC32 of a followed by b, from theirs and b's length."},
    {"find_block", find_block, METH_VARARGS, "First dynamic block that decodes, searched bit by bit."},
    {"decode", decode, METH_VARARGS, "Blocks through the final one, markers where the window is unknown."},
    {"resolve", resolve, METH_VARARGS, "Markers replaced by the bytes of the window."},
    {"published", published, METH_O, "The symbols decode() has published so far."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "gzsplit",
                                        "Starting a deflate decode in the middle of a stream.", -1, methods};

PyMODINIT_FUNC PyInit_gzsplit(void) {
    kraft_table();
    return PyModule_Create(&module_def);
}
