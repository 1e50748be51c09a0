// CAFE_HOST_DEVICE marks the core's inline functions that CUDA device code
// (custom_ops/cuda) calls too: __host__ __device__ under nvcc, nothing
// otherwise, so the core stays plain C++17.
#ifndef CAFE_TF_CORE_HOST_DEVICE_H_
#define CAFE_TF_CORE_HOST_DEVICE_H_

#if defined(__CUDACC__)
#define CAFE_HOST_DEVICE __host__ __device__
#else
#define CAFE_HOST_DEVICE
#endif

#endif  // CAFE_TF_CORE_HOST_DEVICE_H_
