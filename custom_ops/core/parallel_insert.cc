// The batch insert's driver: cafe::Insert (hotsketch.h) split over tasks for
// speed. The rules it applies are hotsketch_rules.h's InsertBatchKey, once per
// distinct key of the batch, bucket by bucket.
//
// Plan (every step keeps the rules' order of operations, so the state is the
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

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "bucket_reducer.h"
#include "hotsketch.h"
#include "hotsketch_rules.h"
#include "memory.h"
#include "pairwise_sum.h"

namespace cafe {

namespace {

using internal::BucketReducer;
using internal::Buffer;
using internal::InsertBatchKey;
using internal::InsertRules;
using internal::PairwiseFinish;
using internal::PairwiseResidues;

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
constexpr int64_t kIdsPerTask = 4096;           // smaller batches use fewer tasks
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


// A few idle scratch sets are kept, each at most 512 MiB.
using InsertScratchPool = internal::ScratchPool<InsertScratch, 4, int64_t{512} << 20>;
InsertScratchPool& IdleScratch() {
  static auto* pool = new InsertScratchPool();  // never destroyed: no exit-order hazard
  return *pool;
}

// Step 1 for one input chunk [begin, end).
template <bool kPow2>
void PartitionChunk(const BucketReducer& bucket_of, int shift, int64_t partitions,
                    const int64_t* __restrict keys, const float* __restrict importance,
                    const int32_t* __restrict feature_index, int64_t begin, int64_t end,
                    ChunkScratch* cs) {
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
    *r = {keys[i], FlushSubnormal(importance[i]), feature_index[i]};
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
    InsertBatchKey(state, base, c, rules, d[k].key, d[k].sum, d[k].tag);
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
            const float* importance, const int32_t* feature_index, int64_t n, int num_shards,
            const ParallelFor& parallel_for) {
  if (n <= 0) return;
  std::unique_ptr<InsertScratch> scratch = IdleScratch().Acquire();
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
          PartitionChunk<true>(bucket_of, shift, P, keys, importance, feature_index, begin, end,
                               &sc.chunks[ci]);
        } else {
          PartitionChunk<false>(bucket_of, shift, P, keys, importance, feature_index, begin, end,
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
  IdleScratch().Release(std::move(scratch));
}

}  // namespace cafe
