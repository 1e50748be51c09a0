// Self-test of the harness's own pieces.
#ifndef CAFE_TF_CUDA_HARNESS_SELF_TEST_H_
#define CAFE_TF_CUDA_HARNESS_SELF_TEST_H_


namespace cafe {
namespace harness {

// Self-test of the pieces that need no backend (generator determinism,
// Zipf shape, comparison catching a 1-ulp / -0.0 difference). True on success.
bool SelfTest();

}  // namespace harness
}  // namespace cafe

#endif  // CAFE_TF_CUDA_HARNESS_SELF_TEST_H_
