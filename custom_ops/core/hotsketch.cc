#include "hotsketch.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <sstream>
#include <type_traits>
#include <utility>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace cafe {

namespace {

// A growable, uninitialised buffer of a trivially copyable type: no zero fill
// of memory that is about to be overwritten, and no page faults once warm.
// Big buffers are 2 MiB aligned and asked to be backed by transparent huge
// pages (where the OS offers them): the insert scatters over and reads back
// tens of MiB, and 4 KiB pages would cost a TLB miss on most block accesses.
template <typename T>
class Buffer {
  static_assert(std::is_trivially_copyable<T>::value, "Buffer holds plain data only");

 public:
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { std::free(data_); }

  T* Reserve(int64_t n) {
    if (n > capacity_) {
      std::free(data_);
      data_ = nullptr;
      capacity_ = 0;
      size_t bytes = static_cast<size_t>(n) * sizeof(T);
      constexpr size_t kHuge = size_t{2} << 20;
      void* p = nullptr;
      if (bytes >= kHuge) {
        bytes = (bytes + kHuge - 1) / kHuge * kHuge;
        if (posix_memalign(&p, kHuge, bytes) != 0) p = nullptr;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
        if (p != nullptr) madvise(p, bytes, MADV_HUGEPAGE);
#endif
      } else if (posix_memalign(&p, 64, bytes) != 0) {
        p = nullptr;
      }
      if (p == nullptr) throw std::bad_alloc();
      data_ = static_cast<T*>(p);
      capacity_ = static_cast<int64_t>(bytes / sizeof(T));
    }
    return data_;
  }
  T* data() const { return data_; }
  int64_t bytes() const { return capacity_ * static_cast<int64_t>(sizeof(T)); }

 private:
  T* data_ = nullptr;
  int64_t capacity_ = 0;
};

// Mix64(key) mod W, the value of BucketOf / FastMod, without their branches:
// a mask when W is a power of two, else FastMod's multiply-high quotient
// estimate (short by at most one, so one conditional subtraction suffices;
// two are done, as FastMod allows for) with conditional moves.
class BucketReducer {
 public:
  explicit BucketReducer(int64_t num_buckets)
      : d_(static_cast<uint64_t>(num_buckets)),
        m_(~0ULL / d_),
        pow2_((d_ & (d_ - 1)) == 0) {}
  bool pow2() const { return pow2_; }
  // kPow2 must equal pow2().
  template <bool kPow2>
  uint64_t Reduce(int64_t key) const {
    return ReduceHash<kPow2>(Mix64(static_cast<uint64_t>(key)));
  }
  // The same for x = Mix64(key).
  template <bool kPow2>
  uint64_t ReduceHash(uint64_t x) const {
    if (kPow2) return x & (d_ - 1);
    const uint64_t q = static_cast<uint64_t>((static_cast<unsigned __int128>(x) * m_) >> 64);
    uint64_t r = x - q * d_;
    r = r >= d_ ? r - d_ : r;
    r = r >= d_ ? r - d_ : r;
    return r;
  }

 private:
  uint64_t d_;
  uint64_t m_;
  bool pow2_;
};

// PairwiseSum in two stages, bit-identical to the padded in-place version
// (x = values padded with zeros to a power of two; x[i] = x[i] + x[i + h] for
// h = half, half/2, ..., 1 and i < h), without the padded copy. The halving levels
// h = half, half/2, ..., S (S = `residues`, a power of two <= half) only ever
// combine indices that are equal mod S, so the residues split into disjoint
// ranges that tasks run independently (this function, for residues
// [first, last)); the levels below S then run serially on x[0, S)
// (PairwiseFinish). Same additions, same operands, same order per element.
void PairwiseResidues(const float* __restrict values, int64_t n, int64_t half, int64_t residues,
                      int64_t first, int64_t last, float* __restrict x) {
  const int64_t paired = n - half;  // x[i] has a real partner for i < paired
  for (int64_t k = 0; k < half; k += residues) {
    const int64_t begin = k + first, end = k + last;
    const int64_t split = std::min(end, std::max(begin, paired));
    for (int64_t i = begin; i < split; ++i) {
      x[i] = FlushSubnormal(values[i]) + FlushSubnormal(values[i + half]);
    }
    for (int64_t i = split; i < end; ++i) x[i] = FlushSubnormal(values[i]) + 0.f;
  }
  for (int64_t h = half >> 1; h >= residues; h >>= 1) {
    for (int64_t k = 0; k < h; k += residues) {
      for (int64_t i = k + first, end = k + last; i < end; ++i) x[i] += x[i + h];
    }
  }
}

float PairwiseFinish(int64_t residues, float* x) {
  for (int64_t h = residues >> 1; h >= 1; h >>= 1) {
    for (int64_t i = 0; i < h; ++i) x[i] += x[i + h];
  }
  return x[0];
}

}  // namespace

float PairwiseSum(const float* values, int64_t n) {
  if (n <= 1) return n == 1 ? FlushSubnormal(values[0]) : 0.f;
  int64_t padded = 1;
  while (padded < n) padded <<= 1;
  const int64_t half = padded >> 1;
  std::vector<float> x(half);
  PairwiseResidues(values, n, half, half, 0, half, x.data());
  return PairwiseFinish(half, x.data());
}

std::string SketchConfig::Validate() const {
  std::ostringstream err;
  if (num_buckets <= 0) err << "num_buckets must be > 0, got " << num_buckets << ". ";
  if (slots_per_bucket <= 0) err << "slots_per_bucket must be > 0, got " << slots_per_bucket << ". ";
  if (hot_rows <= 0) err << "hot_rows must be > 0, got " << hot_rows << ". ";
  if (!(threshold > 0.f) || !std::isfinite(threshold))
    err << "threshold must be finite and > 0, got " << threshold << ". ";
  if (!(demote_threshold >= 0.f) || !std::isfinite(demote_threshold))
    err << "demote_threshold must be finite and >= 0, got " << demote_threshold << ". ";
  if (std::isnan(medium_threshold)) err << "medium_threshold must not be NaN. ";
  if (!(swap_margin == 0.f || (swap_margin >= 1.f && std::isfinite(swap_margin))))
    err << "swap_margin must be 0 (off) or finite and >= 1, got " << swap_margin << ". ";
  if (!(decay_rate > 0.f && decay_rate <= 1.f))
    err << "decay_rate must be in (0, 1], got " << decay_rate << ". ";
  if (decay_rule == DecayRule::kMass && !(decay_mass_factor > 0.0))
    err << "decay_mass_factor must be > 0, got " << decay_mass_factor << ". ";
  if (decay_rule == DecayRule::kBatches && decay_period <= 0)
    err << "decay_period must be > 0, got " << decay_period << ". ";
  const std::string layout = ValidateEntryLayout(hot_rows, tag_bits);
  if (!layout.empty()) err << layout << ". ";
  return err.str();
}

std::string ValidateEntryLayout(int64_t hot_rows, int32_t tag_bits) {
  std::ostringstream err;
  if (tag_bits < 0 || tag_bits > kMaxTagBits) {
    err << "tag_bits must be in [0, " << kMaxTagBits << "], got " << tag_bits;
  } else if (hot_rows > (int64_t{1} << (31 - tag_bits))) {
    err << "a hot slot packs (row << tag_bits) | tag into an int32, so hot_rows * 2^tag_bits "
           "must be <= 2^31: tag_bits " << tag_bits << " (tags < " << (int64_t{1} << tag_bits)
        << ") allows at most " << (int64_t{1} << (31 - tag_bits)) << " hot rows, got "
        << hot_rows;
  }
  return err.str();
}

std::string CheckHotRows(const SketchConfig& config, const int64_t* slots) {
  const int64_t n = config.num_slots();
  for (int64_t s = 0; s < n; ++s) {
    const int32_t e = SlotEntry(slots[s]);
    if (e >= 0 && EntryRow(e, config.tag_bits) >= config.hot_rows) {
      std::ostringstream err;
      err << "the sketch state holds hot row " << EntryRow(e, config.tag_bits) << ", but hot_rows is "
          << config.hot_rows << " (with tag_bits " << config.tag_bits
          << "): the state was written with other hot_rows or tag_bits";
      return err.str();
    }
  }
  return "";
}

void SerialFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (n > 0) fn(0, n);
}

std::string ValidateInsert(const float* importance, const int32_t* tags, int64_t n,
                           int32_t tag_bits) {
  if (n >= (int64_t{1} << 31)) return "a batch must hold fewer than 2^31 ids";
  // Branch-free screen (vectorised): an importance is valid iff its bits are
  // those of a finite float >= 0 (+0 .. FLT_MAX, or -0), a tag iff its bits
  // from tag_bits up are clear (0 <= tag < 2^tag_bits). Only a batch that
  // fails it is scanned again for the message.
  constexpr int64_t kChunk = 4096;
  bool bad = false;
  for (int64_t begin = 0; begin < n && !bad; begin += kChunk) {
    const int64_t end = std::min(n, begin + kChunk);
    uint32_t flags = 0;
    for (int64_t i = begin; i < end; ++i) {
      uint32_t bits;
      std::memcpy(&bits, importance + i, sizeof(bits));
      flags |= static_cast<uint32_t>((bits >= 0x7f800000u) & (bits != 0x80000000u));
      flags |= static_cast<uint32_t>(tags[i]) >> tag_bits;
    }
    bad = flags != 0;
  }
  if (!bad) return "";
  for (int64_t i = 0; i < n; ++i) {
    std::string problem = InvalidInsertEntry(importance[i], tags[i], i, tag_bits);
    if (!problem.empty()) return problem;
  }
  return "";
}

std::string InvalidInsertEntry(float v, int32_t tag, int64_t index, int32_t tag_bits) {
  std::ostringstream err;
  if (std::isnan(v) || std::isinf(v) || v < 0.f) {
    err << "importance must be finite and >= 0, got " << v << " at index " << index;
  } else if (tag < 0 || (static_cast<uint32_t>(tag) >> tag_bits) != 0) {
    err << "tags must be in [0, 2^tag_bits) = [0, " << (int64_t{1} << tag_bits) << ") (tag_bits "
        << tag_bits << ", from the number of tags: a CAFE layer's features), got " << tag
        << " at index " << index;
  }
  return err.str();
}


namespace {

// ---- batch insert --------------------------------------------------------------------------
//
// Plan (every step keeps the documented order of operations, so the state is the
// same as a plain per-bucket loop, whatever the number of tasks):
//  1. (parallel over contiguous input chunks, claimed dynamically) each id's
//     (key, importance, tag) record is appended to the block list of its
//     partition, a partition being a run of 2^shift buckets: one pass, a few
//     hundred sequential write streams. Each chunk also runs its share of the
//     pairwise mass sum (see PairwiseResidues).
//  2. (parallel over partitions, largest first, handed out dynamically) the
//     partition's records, chunk by chunk, i.e. in input order, go through a
//     hash table of the partition's distinct keys (it fits in L2): importance
//     summed in input order, min tag, each new key linked into its bucket's
//     list. Then per bucket, ascending: its distinct keys sorted by key and
//     inserted one by one.

// One id of the batch: key, importance, tag.
struct Record {
  int64_t key;
  float value;
  int32_t tag;
};
static_assert(sizeof(Record) == 16, "Record must pack into 16 bytes");

// One distinct key of a partition: importance summed in input order, min tag
// (kRepeatedBit set when the key occurs more than once), and either the next distinct key of the same bucket (-1: none) or, when the
// partition's keys are sorted instead (a sparse partition), its bucket.
struct Distinct {
  int64_t key;
  float sum;
  int32_t tag;
  int32_t next;
  uint32_t local;  // bucket minus the partition's first bucket
};

constexpr int kMaxTasks = 64;
constexpr int kMaxChunks = 256;                 // step 1 claims input chunks dynamically
constexpr int kChunksPerTask = 4;               // (a descheduled thread holds up less)
constexpr int kListShift = 12;                  // partitions of up to 4096 buckets, normally
constexpr int64_t kMaxHeadWidth = 65536;        // bucket lists for partitions up to this wide
constexpr int64_t kRecordsPerPartition = 4096;  // what the partition size aims at
constexpr int64_t kIdsPerTask = 16384;          // smaller batches use fewer tasks
constexpr int64_t kBlockRecords = 64;           // records per block of a partition's list
constexpr uintptr_t kBlockBytes = kBlockRecords * sizeof(Record);  // blocks are aligned to this
constexpr uint64_t kHashMultiplier = 0xd6e8feb86659fd93ULL;        // odd, well mixed
constexpr int64_t kPairwiseResidues = 16384;    // pairwise levels below this run serially
static_assert((kBlockBytes & (kBlockBytes - 1)) == 0, "block size must be a power of two");

// Step 1 state of one input chunk: blocks of records, one block list per partition.
struct ChunkScratch {
  Buffer<char> block_memory;
  Record* blocks = nullptr;     // kBlockBytes aligned, within block_memory
  Buffer<int32_t> next_block;   // [block] next block of the same list, -1: none
  Buffer<Record*> cursor;       // [partition] where its next record goes; nullptr: no block yet
  Buffer<int32_t> first_block;  // [partition] first block of its list
  Buffer<uint32_t> num_blocks;  // [partition]
  Buffer<uint32_t> count;       // [partition] records

  int64_t bytes() const {
    return block_memory.bytes() + next_block.bytes() + cursor.bytes() + first_block.bytes() +
           num_blocks.bytes() + count.bytes();
  }
};

// Step 2 state of one task (the partition in hand).
struct TaskScratch {
  Buffer<int32_t> table;        // distinct index, -1: empty
  Buffer<Distinct> distinct;
  Buffer<int32_t> head;         // [bucket in partition] first distinct key, -1: none (kept so)
  int64_t head_size = 0;        // entries of head initialised
  Buffer<uint32_t> touched;     // buckets in partition with a key, in order of first key
  std::vector<Distinct> many_keys;

  // head[0, width), all -1: filled when it grows, reset entry by entry after use.
  int32_t* Head(int64_t width) {
    if (width > head_size) {
      int32_t* h = head.Reserve(width);
      head_size = head.bytes() / static_cast<int64_t>(sizeof(int32_t));
      std::fill_n(h, head_size, -1);
    }
    return head.data();
  }

  int64_t bytes() const { return table.bytes() + distinct.bytes() + head.bytes() + touched.bytes(); }
};

struct InsertScratch {
  Buffer<float> pairwise;
  Buffer<uint32_t> part_size;
  Buffer<uint32_t> part_order;
  ChunkScratch chunks[kMaxChunks];
  TaskScratch tasks[kMaxTasks];

  int64_t bytes() const {
    int64_t total = pairwise.bytes() + part_size.bytes() + part_order.bytes();
    for (const ChunkScratch& c : chunks) total += c.bytes();
    for (const TaskScratch& t : tasks) total += t.bytes();
    return total;
  }
};

// Scratch memory is reused across calls (no allocation, zeroing or page
// faults per batch): a few idle scratch sets are kept, each at most this big.
constexpr int kMaxIdleScratch = 4;
constexpr int64_t kMaxIdleScratchBytes = int64_t{512} << 20;

std::mutex scratch_mutex;
std::vector<std::unique_ptr<InsertScratch>>& IdleScratch() {
  static auto* idle = new std::vector<std::unique_ptr<InsertScratch>>();
  return *idle;
}

std::unique_ptr<InsertScratch> AcquireScratch() {
  {
    std::lock_guard<std::mutex> lock(scratch_mutex);
    auto& idle = IdleScratch();
    if (!idle.empty()) {
      std::unique_ptr<InsertScratch> scratch = std::move(idle.back());
      idle.pop_back();
      return scratch;
    }
  }
  return std::make_unique<InsertScratch>();
}

void ReleaseScratch(std::unique_ptr<InsertScratch> scratch) {
  if (scratch->bytes() > kMaxIdleScratchBytes) return;
  std::lock_guard<std::mutex> lock(scratch_mutex);
  auto& idle = IdleScratch();
  if (static_cast<int>(idle.size()) < kMaxIdleScratch) idle.push_back(std::move(scratch));
}

// How a bucket treats a key: the config's insert rules.
struct InsertRules {
  bool second_sighting;
  bool erode;
};

// Inserts one distinct key, of fingerprint fp, into its bucket (docs/sketch.md,
// batch insert). `sighted`: the key may be promoted even if it takes a slot
// over (it occurs more than once in the batch, or the second sighting rule is off).
inline void InsertIntoBucket(const SketchState& state, int64_t base, int32_t c, uint32_t fp,
                             float v, int32_t tag, bool sighted, bool erode) {
  int32_t empty = -1;
  for (int32_t j = 0; j < c; ++j) {
    const int64_t s = base + j;
    if (state.scores[s] > 0.f) {
      if (SlotFp(state.slots[s]) == fp) {
        state.scores[s] += v;
        const int32_t m = SlotEntry(state.slots[s]);
        // Seen again: a pending key becomes promotable.
        if (m < 0 && MarkerPending(m)) state.slots[s] = SlotWord(fp, ColdMarker(MarkerTag(m), false));
        return;
      }
    } else if (empty < 0) {
      empty = j;
    }
  }
  if (empty >= 0) {
    const int64_t s = base + empty;
    state.slots[s] = SlotWord(fp, ColdMarker(tag, false));
    state.scores[s] = v;
    return;
  }
  // The smallest non-hot slot (ties: highest index) is eroded or taken over.
  int32_t victim = -1;
  for (int32_t j = 0; j < c; ++j) {
    const int64_t s = base + j;
    if (SlotEntry(state.slots[s]) >= 0) continue;
    if (victim < 0 || state.scores[s] <= state.scores[base + victim]) victim = j;
  }
  if (victim < 0) return;  // every slot is hot: the update is dropped
  const int64_t s = base + victim;
  if (erode) {
    const float gain = FlushSubnormal(v - state.scores[s]);
    if (!(gain > 0.f)) {  // eroded: the newcomer is not recorded
      const float left = FlushSubnormal(state.scores[s] - v);
      if (left > 0.f) {
        state.scores[s] = left;
      } else {  // eroded to 0: the slot is empty
        state.slots[s] = kEmptySlot;
        state.scores[s] = 0.f;
      }
      return;
    }
    state.scores[s] = gain;
  } else {
    state.scores[s] += v;  // SpaceSaving: the newcomer inherits the score
  }
  // A newcomer that took a slot over waits for a second sighting.
  state.slots[s] = SlotWord(fp, ColdMarker(tag, !sighted));
}

// Step 1 for one input chunk [begin, end).
template <bool kPow2>
void PartitionChunk(const BucketReducer& bucket_of, int shift, int64_t partitions,
                    const int64_t* __restrict keys, const float* __restrict importance,
                    const int32_t* __restrict tags, int64_t begin, int64_t end, ChunkScratch* cs) {
  // Each partition holds at most one partly filled block.
  const int64_t max_blocks = (end - begin) / kBlockRecords + std::min(partitions, end - begin) + 1;
  char* memory = cs->block_memory.Reserve(max_blocks * kBlockBytes + kBlockBytes);
  Record* const blocks = reinterpret_cast<Record*>(
      (reinterpret_cast<uintptr_t>(memory) + kBlockBytes - 1) & ~(kBlockBytes - 1));
  cs->blocks = blocks;
  int32_t* __restrict next = cs->next_block.Reserve(max_blocks);
  Record** __restrict cursor = cs->cursor.Reserve(partitions);
  int32_t* __restrict first = cs->first_block.Reserve(partitions);
  uint32_t* __restrict num_blocks = cs->num_blocks.Reserve(partitions);
  std::fill_n(cursor, partitions, nullptr);
  std::memset(num_blocks, 0, sizeof(uint32_t) * partitions);
  int32_t used = 0;
  for (int64_t i = begin; i < end; ++i) {
    const uint32_t p = static_cast<uint32_t>(bucket_of.Reduce<kPow2>(keys[i]) >> shift);
    Record* r = cursor[p];
    if ((reinterpret_cast<uintptr_t>(r) & (kBlockBytes - 1)) == 0) {  // block full, or none yet
      const int32_t fresh = used++;
      next[fresh] = -1;
      if (r == nullptr) {
        first[p] = fresh;
      } else {
        next[(r - blocks) / kBlockRecords - 1] = fresh;
      }
      ++num_blocks[p];
      r = blocks + static_cast<int64_t>(fresh) * kBlockRecords;
    }
    *r = {keys[i], FlushSubnormal(importance[i]), tags[i]};
    cursor[p] = r + 1;
  }
  uint32_t* __restrict count = cs->count.Reserve(partitions);
  for (int64_t p = 0; p < partitions; ++p) {
    count[p] = num_blocks[p] == 0
                   ? 0
                   : (num_blocks[p] - 1) * kBlockRecords +
                         static_cast<uint32_t>((cursor[p] - blocks - 1) % kBlockRecords + 1);
  }
}

// Inserts one bucket's distinct keys d[0, nd) (reordered here) in ascending key order.
void InsertKeys(const SketchState& state, int64_t base, int32_t c, const InsertRules& rules,
                Distinct* d, int64_t nd) {
  if (nd <= 32) {
    for (int64_t i = 1; i < nd; ++i) {  // insertion sort by key (keys are distinct)
      const Distinct r = d[i];
      int64_t j = i - 1;
      for (; j >= 0 && d[j].key > r.key; --j) d[j + 1] = d[j];
      d[j + 1] = r;
    }
  } else {
    std::sort(d, d + nd, [](const Distinct& a, const Distinct& b) { return a.key < b.key; });
  }
  for (int64_t k = 0; k < nd; ++k) {
    // A key whose summed importance is 0 changes nothing.
    if (d[k].sum > 0.f) {
      InsertIntoBucket(state, base, c, FingerprintOf(d[k].key), d[k].sum, d[k].tag & ~kRepeatedBit,
                       d[k].tag < 0 || !rules.second_sighting, rules.erode);
    }
  }
}

// The same for the keys of one bucket's list (from `head`).
void InsertListedKeys(const SketchState& state, int64_t base, int32_t c, const InsertRules& rules,
                      const Distinct* distinct, int32_t head, std::vector<Distinct>* many) {
  constexpr int kFew = 32;
  Distinct few[kFew];
  int64_t nd = 0;
  for (int32_t k = head; k >= 0; k = distinct[k].next) {
    if (nd == kFew) {  // many keys in this bucket: continue on the heap
      many->assign(few, few + kFew);
      for (; k >= 0; k = distinct[k].next) many->push_back(distinct[k]);
      return InsertKeys(state, base, c, rules, many->data(),
                        static_cast<int64_t>(many->size()));
    }
    few[nd++] = distinct[k];
  }
  InsertKeys(state, base, c, rules, few, nd);
}

// Step 2 for one partition of `m` records, spread over the chunks' block lists.
template <bool kPow2>
void InsertPartition(const SketchState& state, const BucketReducer& bucket_of, int32_t c,
                     const InsertRules& rules,
                     int64_t partition, int shift, int64_t width, int64_t m,
                     const InsertScratch& sc, int64_t num_chunks, TaskScratch* ts) {
  int table_bits = 4;
  while ((int64_t{1} << table_bits) < 2 * m) ++table_bits;  // load factor <= 1/2
  const int64_t table_size = int64_t{1} << table_bits;
  const uint64_t table_mask = static_cast<uint64_t>(table_size - 1);
  const int hash_shift = 64 - table_bits;
  int32_t* __restrict table = ts->table.Reserve(table_size);
  Distinct* __restrict distinct = ts->distinct.Reserve(m);
  // Dense partitions link each bucket's keys into a list (head: one entry per
  // bucket); sparse ones (a small batch in a big sketch) sort their keys by
  // bucket instead, so nothing costs O(width).
  const bool lists = width <= kMaxHeadWidth && width <= 16 * m;
  uint32_t* __restrict touched = lists ? ts->touched.Reserve(std::min(m, width)) : nullptr;
  int32_t* __restrict head = lists ? ts->Head(width) : nullptr;
  std::memset(table, 0xff, sizeof(int32_t) * table_size);
  const uint64_t first_bucket = static_cast<uint64_t>(partition) << shift;
  int32_t nd = 0;
  int64_t num_touched = 0;
  for (int64_t ci = 0; ci < num_chunks; ++ci) {  // chunks in input order
    const ChunkScratch& chunk = sc.chunks[ci];
    int64_t left = chunk.count.data()[partition];
    if (left == 0) continue;
    const Record* blocks = chunk.blocks;
    const int32_t* next = chunk.next_block.data();
    for (int32_t blk = chunk.first_block.data()[partition]; blk >= 0; blk = next[blk]) {
      const Record* block = blocks + static_cast<int64_t>(blk) * kBlockRecords;
      const int64_t fill = std::min<int64_t>(left, kBlockRecords);
      left -= fill;
      if (next[blk] >= 0) {  // the blocks of a list are scattered: fetch the next one now
        const char* ahead = reinterpret_cast<const char*>(blocks + int64_t{next[blk]} * kBlockRecords);
        for (uintptr_t off = 0; off < kBlockBytes; off += 64) __builtin_prefetch(ahead + off);
      }
      for (int64_t r = 0; r < fill; ++r) {
        const Record& rec = block[r];
        uint64_t h = (static_cast<uint64_t>(rec.key) * kHashMultiplier) >> hash_shift;
        for (;;) {
          const int32_t idx = table[h];
          if (idx < 0) {  // a new key
            const uint64_t local = bucket_of.Reduce<kPow2>(rec.key) - first_bucket;
            distinct[nd] = {rec.key, 0.f + rec.value, rec.tag, -1, static_cast<uint32_t>(local)};
            if (lists) {  // link it into its bucket's list
              if (head[local] < 0) touched[num_touched++] = static_cast<uint32_t>(local);
              distinct[nd].next = head[local];
              head[local] = nd;
            }
            table[h] = nd;
            ++nd;
            break;
          }
          Distinct& d = distinct[idx];
          if (d.key == rec.key) {
            d.sum += rec.value;
            d.tag = std::min(d.tag & ~kRepeatedBit, rec.tag) | kRepeatedBit;
            break;
          }
          h = (h + 1) & table_mask;
        }
      }
    }
  }
  if (!lists) {  // sparse: sort by (bucket, key), insert bucket by bucket
    std::sort(distinct, distinct + nd, [](const Distinct& a, const Distinct& b) {
      return a.local != b.local ? a.local < b.local : a.key < b.key;
    });
    for (int64_t k = 0; k < nd;) {
      int64_t end = k + 1;
      while (end < nd && distinct[end].local == distinct[k].local) ++end;
      InsertKeys(state, static_cast<int64_t>(first_bucket + distinct[k].local) * c, c,
                 rules, distinct + k, end - k);
      k = end;
    }
    return;
  }
  // Buckets in ascending order: a scan when most have keys, else a sort of those that do.
  if (num_touched * 16 >= width) {
    for (int64_t b = 0; b < width; ++b) {
      if (head[b] >= 0)
        InsertListedKeys(state, static_cast<int64_t>(first_bucket + b) * c, c, rules, distinct,
                         head[b], &ts->many_keys);
    }
  } else {
    std::sort(touched, touched + num_touched);
    for (int64_t k = 0; k < num_touched; ++k) {
      InsertListedKeys(state, static_cast<int64_t>(first_bucket + touched[k]) * c, c,
                       rules, distinct, head[touched[k]], &ts->many_keys);
    }
  }
  for (int64_t k = 0; k < num_touched; ++k) head[touched[k]] = -1;
}

}  // namespace

void Insert(const SketchConfig& config, const SketchState& state, const int64_t* keys,
            const float* importance, const int32_t* tags, int64_t n, int num_shards,
            const ParallelFor& parallel_for) {
  if (n <= 0) return;
  std::unique_ptr<InsertScratch> scratch = AcquireScratch();
  InsertScratch& sc = *scratch;
  const int64_t W = config.num_buckets;
  const int32_t c = config.slots_per_bucket;
  const BucketReducer bucket_of(W);
  const InsertRules rules = {config.second_sighting, config.erode};

  // Partitions of 2^shift buckets, sized for ~kRecordsPerPartition ids each, at
  // most kListShift wide (bucket lists stay small) unless that makes more than
  // n / 256 partitions (each may hold a partly filled block open in step 1).
  int shift = 0;
  {
    const double target = static_cast<double>(W) * kRecordsPerPartition / static_cast<double>(n);
    while (shift < kListShift && (int64_t{1} << shift) < W &&
           static_cast<double>(int64_t{2} << shift) <= target) {
      ++shift;
    }
    const int64_t max_partitions = std::max<int64_t>(1, n / 256);
    while (((W - 1) >> shift) + 1 > max_partitions) ++shift;
  }
  const int64_t B = int64_t{1} << shift;
  const int64_t P = (W + B - 1) >> shift;
  const int64_t T = std::max<int64_t>(
      1, std::min<int64_t>({num_shards, kMaxTasks, (n + kIdsPerTask - 1) / kIdsPerTask}));
  const int64_t C = T == 1 ? 1 : std::max(T, std::min<int64_t>({T * kChunksPerTask, kMaxChunks,
                                                                 n / kIdsPerTask}));

  // The pairwise mass sum: levels down to `residues` spread over the chunks.
  int64_t padded = 1;
  while (padded < n) padded <<= 1;
  const int64_t half = padded >> 1;
  const int64_t residues = std::min(half, kPairwiseResidues);
  float* pairwise = sc.pairwise.Reserve(std::max<int64_t>(1, half));

  // 1: records into per-(chunk, partition) block lists; the mass sum's levels.
  std::atomic<int64_t> next_chunk{0};
  parallel_for(T, [&](int64_t tb, int64_t te) {
    for (int64_t t = tb; t < te; ++t) {
      for (int64_t ci = next_chunk.fetch_add(1, std::memory_order_relaxed); ci < C;
           ci = next_chunk.fetch_add(1, std::memory_order_relaxed)) {
        const int64_t begin = n * ci / C, end = n * (ci + 1) / C;
        if (bucket_of.pow2()) {
          PartitionChunk<true>(bucket_of, shift, P, keys, importance, tags, begin, end,
                               &sc.chunks[ci]);
        } else {
          PartitionChunk<false>(bucket_of, shift, P, keys, importance, tags, begin, end,
                                &sc.chunks[ci]);
        }
        if (n > 1) {
          PairwiseResidues(importance, n, half, residues, residues * ci / C,
                           residues * (ci + 1) / C, pairwise);
        }
      }
    }
  });
  *state.mass += n == 1 ? FlushSubnormal(importance[0]) : PairwiseFinish(residues, pairwise);
  *state.batches += 1;

  // 2: partitions, largest first, handed out dynamically.
  uint32_t* part_size = sc.part_size.Reserve(P);
  uint32_t* part_order = sc.part_order.Reserve(P);
  int64_t nonempty = 0;
  for (int64_t p = 0; p < P; ++p) {
    uint32_t size = 0;
    for (int64_t ci = 0; ci < C; ++ci) size += sc.chunks[ci].count.data()[p];
    part_size[p] = size;
    if (size > 0) part_order[nonempty++] = static_cast<uint32_t>(p);
  }
  if (T > 1) {
    std::sort(part_order, part_order + nonempty, [&](uint32_t a, uint32_t b) {
      return part_size[a] != part_size[b] ? part_size[a] > part_size[b] : a < b;
    });
  }
  std::atomic<int64_t> next{0};
  parallel_for(T, [&](int64_t tb, int64_t te) {
    for (int64_t t = tb; t < te; ++t) {
      for (int64_t k = next.fetch_add(1, std::memory_order_relaxed); k < nonempty;
           k = next.fetch_add(1, std::memory_order_relaxed)) {
        const int64_t p = part_order[k];
        const int64_t width = std::min(B, W - (p << shift));
        if (bucket_of.pow2()) {
          InsertPartition<true>(state, bucket_of, c, rules, p, shift, width,
                                part_size[p], sc, C, &sc.tasks[t]);
        } else {
          InsertPartition<false>(state, bucket_of, c, rules, p, shift, width,
                                 part_size[p], sc, C, &sc.tasks[t]);
        }
      }
    }
  });
  ReleaseScratch(std::move(scratch));
}

// ---- query ---------------------------------------------------------------------------------

namespace {

constexpr int64_t kQueryAhead = 16;  // ids hashed and prefetched this far ahead

// Bit j set iff slot j is occupied (score > 0) and holds fingerprint `fp`.
template <int C>
inline uint32_t MatchMask(const int64_t* slot_words, const float* slot_scores, uint32_t fp) {
#if defined(__SSE2__)
  if (C == 4) {
    // The high 32-bit halves (fingerprints) of the four words, compared at once.
    const __m128 a = _mm_castsi128_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(slot_words)));
    const __m128 b =
        _mm_castsi128_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(slot_words + 2)));
    const __m128i high = _mm_castps_si128(_mm_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
    const __m128 equal = _mm_castsi128_ps(
        _mm_cmpeq_epi32(high, _mm_set1_epi32(static_cast<int32_t>(fp))));
    const __m128 occupied = _mm_cmpgt_ps(_mm_loadu_ps(slot_scores), _mm_setzero_ps());
    return static_cast<uint32_t>(_mm_movemask_ps(_mm_and_ps(equal, occupied)));
  }
#endif
  uint32_t mask = 0;
  for (int j = 0; j < C; ++j)
    mask |= static_cast<uint32_t>((slot_scores[j] > 0.f) & (SlotFp(slot_words[j]) == fp)) << j;
  return mask;
}

// The answer for fingerprint `fp` from its bucket's slots.
template <int C>
inline void LookUp(const int64_t* slot_words, const float* slot_scores, int64_t c,
                   int32_t tag_bits, float medium, uint32_t fp, int32_t* out_row,
                   int32_t* out_level) {
  if (C > 0) {  // branch-free
    const uint32_t mask = MatchMask<C>(slot_words, slot_scores, fp);
    static_assert((C & (C - 1)) == 0, "C must be a power of two");
    // First match, or (no match: ctz gives C) slot 0, whose values are then ignored.
    const uint32_t j = static_cast<uint32_t>(__builtin_ctz(mask | (1u << C))) & (C - 1);
    // Integer arithmetic instead of branches: hit/miss and hot/not are unpredictable.
    const uint32_t found = mask != 0;
    // -1 when not found or not hot (a cold marker; -1 >> tag_bits is -1).
    const int32_t row = EntryRow(std::max(SlotEntry(slot_words[j]), kRowNone), tag_bits) |
                        (static_cast<int32_t>(found) - 1);
    const uint32_t hot = static_cast<uint32_t>(~row) >> 31;                // row >= 0
    const uint32_t medium_or_cold = found & static_cast<uint32_t>(slot_scores[j] >= medium);
    *out_row = row;
    *out_level = static_cast<int32_t>((hot << 1) | (medium_or_cold & (hot ^ 1)));
    return;
  }
  int32_t row = -1;
  int32_t level = kLevelCold;
  for (int64_t j = 0; j < c; ++j) {
    if (slot_scores[j] > 0.f && SlotFp(slot_words[j]) == fp) {
      row = EntryRow(std::max(SlotEntry(slot_words[j]), kRowNone), tag_bits);
      level = row >= 0 ? kLevelHot : (slot_scores[j] >= medium ? kLevelMedium : kLevelCold);
      break;
    }
  }
  *out_row = row;
  *out_level = level;
}
static_assert(kLevelCold == 0 && kLevelMedium == 1 && kLevelHot == 2,
              "LookUp computes the level arithmetically");

// Lookup of keys[begin, end): buckets hashed and prefetched kQueryAhead ids
// ahead. C > 0: slots per bucket known at compile time; C == 0: any c.
template <int C, bool kPow2>
void QueryRange(const BucketReducer& bucket_of, int32_t c_runtime, int32_t tag_bits,
                const ConstSketchState& state, float medium, const int64_t* __restrict keys,
                int64_t begin, int64_t end, int32_t* __restrict out_rows,
                int32_t* __restrict out_levels) {
  const int64_t c = C > 0 ? C : c_runtime;
  const int64_t* const state_slots = state.slots;
  const float* const state_scores = state.scores;
  struct Located {
    int64_t base;
    uint32_t fp;
  };
  Located ring[kQueryAhead];
  auto locate = [&](int64_t i) {
    const uint64_t h = Mix64(static_cast<uint64_t>(keys[i]));
    const int64_t base = static_cast<int64_t>(bucket_of.ReduceHash<kPow2>(h)) * c;
    __builtin_prefetch(state_slots + base);
    __builtin_prefetch(state_scores + base);
    return Located{base, static_cast<uint32_t>(h >> 32)};
  };
  auto answer = [&](int64_t i, Located at) {
    LookUp<C>(state_slots + at.base, state_scores + at.base, c, tag_bits, medium, at.fp,
              out_rows + i, out_levels + i);
  };
  if (end - begin <= kQueryAhead) {
    for (int64_t i = begin; i < end; ++i) answer(i, locate(i));
    return;
  }
  for (int64_t k = 0; k < kQueryAhead; ++k) ring[k] = locate(begin + k);
  int64_t i = begin;
  for (; i + kQueryAhead < end; ++i) {
    const int64_t r = (i - begin) & (kQueryAhead - 1);
    const Located at = ring[r];
    ring[r] = locate(i + kQueryAhead);
    answer(i, at);
  }
  for (; i < end; ++i) answer(i, ring[(i - begin) & (kQueryAhead - 1)]);
}

template <int C>
void QueryRangeFor(const BucketReducer& bucket_of, int32_t c, int32_t tag_bits,
                   const ConstSketchState& state, float medium, const int64_t* keys,
                   int64_t begin, int64_t end, int32_t* out_rows, int32_t* out_levels) {
  if (bucket_of.pow2()) {
    QueryRange<C, true>(bucket_of, c, tag_bits, state, medium, keys, begin, end, out_rows,
                        out_levels);
  } else {
    QueryRange<C, false>(bucket_of, c, tag_bits, state, medium, keys, begin, end, out_rows,
                         out_levels);
  }
}

}  // namespace

void Query(const SketchConfig& config, const ConstSketchState& state, const int64_t* keys,
           int64_t n, int32_t* out_rows, int32_t* out_levels, const ParallelFor& parallel_for) {
  const BucketReducer bucket_of(config.num_buckets);
  const int32_t c = config.slots_per_bucket;
  const int32_t t = config.tag_bits;
  const float medium = config.medium_threshold;
  parallel_for(n, [&](int64_t begin, int64_t end) {
    switch (c) {
      case 1: return QueryRangeFor<1>(bucket_of, c, t, state, medium, keys, begin, end, out_rows, out_levels);
      case 2: return QueryRangeFor<2>(bucket_of, c, t, state, medium, keys, begin, end, out_rows, out_levels);
      case 4: return QueryRangeFor<4>(bucket_of, c, t, state, medium, keys, begin, end, out_rows, out_levels);
      case 8: return QueryRangeFor<8>(bucket_of, c, t, state, medium, keys, begin, end, out_rows, out_levels);
      default: return QueryRangeFor<0>(bucket_of, c, t, state, medium, keys, begin, end, out_rows, out_levels);
    }
  });
}

double DecayMassLimit(const SketchConfig& config) {
  return config.decay_mass_factor * static_cast<double>(config.num_buckets) *
         static_cast<double>(config.threshold);
}

MigrationResult Migrate(const SketchConfig& config, const SketchState& state, bool force_decay) {
  MigrationResult result;
  const int64_t slots = config.num_slots();
  const int32_t tag_bits = config.tag_bits;
  const DecaySteps due =
      DueDecaySteps(config.decay_rule == DecayRule::kBatches, DecayMassLimit(config),
                    config.decay_period, force_decay, *state.mass, *state.batches);
  if (due.steps > 0) {
    result.decayed = true;
    const float factor = DecayFactor(config.decay_rate, due.steps);
    for (int64_t s = 0; s < slots; ++s) {
      if (!(state.scores[s] > 0.f)) continue;
      state.scores[s] = FlushSubnormal(state.scores[s] * factor);
      const int32_t e = SlotEntry(state.slots[s]);
      // A hot key is demoted below the threshold, and always when its score
      // underflowed to 0 (its slot empties, so it cannot keep a row).
      if (e >= 0 && (state.scores[s] < config.demote_threshold || !(state.scores[s] > 0.f))) {
        const int32_t tag = EntryTag(e, tag_bits);
        result.demoted.push_back({SlotFp(state.slots[s]), tag, EntryRow(e, tag_bits)});
        state.slots[s] = WithEntry(state.slots[s], ColdMarker(tag, false));
      }
      if (!(state.scores[s] > 0.f)) {  // underflowed: the slot is empty again
        state.slots[s] = kEmptySlot;
        state.scores[s] = 0.f;
      }
    }
    *state.mass = due.mass_left;
    *state.batches = due.batches_left;
  }
  // Orders by score break ties by fingerprint, then by slot (fingerprints are
  // unique within a bucket, not across buckets).
  auto fp_then_slot = [&](int64_t a, int64_t b) {
    const uint32_t fa = SlotFp(state.slots[a]), fb = SlotFp(state.slots[b]);
    return fa != fb ? fa < fb : a < b;
  };
  // Pending keys (not seen since they took their slot over) wait.
  std::vector<int64_t> candidates;
  for (int64_t s = 0; s < slots; ++s) {
    const int32_t m = SlotEntry(state.slots[s]);
    if (m < 0 && !MarkerPending(m) && state.scores[s] > 0.f &&
        state.scores[s] >= config.threshold)
      candidates.push_back(s);
  }
  if (candidates.empty()) return result;
  std::sort(candidates.begin(), candidates.end(), [&](int64_t a, int64_t b) {
    if (state.scores[a] != state.scores[b]) return state.scores[a] > state.scores[b];
    return fp_then_slot(a, b);
  });
  // Rows in use: those a hot slot's entry holds.
  std::vector<char> used(static_cast<size_t>(config.hot_rows), 0);
  std::vector<int64_t> hot;
  for (int64_t s = 0; s < slots; ++s) {
    const int32_t e = SlotEntry(state.slots[s]);
    if (e >= 0) {
      used[EntryRow(e, tag_bits)] = 1;
      hot.push_back(s);
    }
  }
  if (config.swap_margin > 0.f) {
    // Candidates beyond the free rows displace the weakest hot keys (score
    // ascending, fingerprint ascending, slot ascending) while they outscore
    // them by the margin: the candidates' scores fall and the hot keys' rise,
    // so the pairs that qualify are a prefix.
    const int64_t free = config.hot_rows - static_cast<int64_t>(hot.size());
    std::sort(hot.begin(), hot.end(), [&](int64_t a, int64_t b) {
      if (state.scores[a] != state.scores[b]) return state.scores[a] < state.scores[b];
      return fp_then_slot(a, b);
    });
    for (size_t i = 0; i < hot.size() && free + static_cast<int64_t>(i) <
                                             static_cast<int64_t>(candidates.size());
         ++i) {
      const int64_t s = hot[i];
      if (!(state.scores[candidates[free + i]] > config.swap_margin * state.scores[s])) break;
      const int32_t e = SlotEntry(state.slots[s]);
      const int32_t row = EntryRow(e, tag_bits);
      const int32_t tag = EntryTag(e, tag_bits);
      result.demoted.push_back({SlotFp(state.slots[s]), tag, row});
      used[row] = 0;
      state.slots[s] = WithEntry(state.slots[s], ColdMarker(tag, false));
    }
  }
  size_t next = 0;
  for (int32_t row = 0; row < config.hot_rows && next < candidates.size(); ++row) {
    if (used[row]) continue;
    const int64_t s = candidates[next++];
    const int32_t tag = MarkerTag(SlotEntry(state.slots[s]));
    state.slots[s] = WithEntry(state.slots[s], HotEntry(row, tag, tag_bits));
    result.promoted.push_back({SlotFp(state.slots[s]), tag, row});
  }
  return result;
}

}  // namespace cafe
