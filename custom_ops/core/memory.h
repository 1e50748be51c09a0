// Memory for the sketch's speed machinery (no rules here): uninitialised
// buffers backed by transparent huge pages, and a pool that keeps a few idle
// scratch sets warm across calls.
#ifndef CAFE_TF_CORE_MEMORY_H_
#define CAFE_TF_CORE_MEMORY_H_

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace cafe {
namespace internal {

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

// Scratch sets reused across calls (no allocation, zeroing or page faults per
// batch): at most kMaxIdle idle sets are kept, each at most kMaxIdleBytes big
// (T::bytes()); a bigger one is freed on release.
template <typename T, int kMaxIdle, int64_t kMaxIdleBytes>
class ScratchPool {
 public:
  std::unique_ptr<T> Acquire() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!idle_.empty()) {
        std::unique_ptr<T> scratch = std::move(idle_.back());
        idle_.pop_back();
        return scratch;
      }
    }
    return std::make_unique<T>();
  }

  void Release(std::unique_ptr<T> scratch) {
    if (scratch->bytes() > kMaxIdleBytes) return;
    std::lock_guard<std::mutex> lock(mutex_);
    if (static_cast<int>(idle_.size()) < kMaxIdle) idle_.push_back(std::move(scratch));
  }

 private:
  std::mutex mutex_;
  std::vector<std::unique_ptr<T>> idle_;
};

}  // namespace internal
}  // namespace cafe

#endif  // CAFE_TF_CORE_MEMORY_H_
