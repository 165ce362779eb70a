#include <gtest/gtest.h>

#include "core/runtime/check.h"
#include "core/tensor/ops.h"
#include "core/tensor/tensor.h"

namespace xp::tensor {

TEST(Tensor, FromValuesRoundTripsAndReportsShape) {
  Tensor t = Tensor::from_values({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
  EXPECT_EQ(t.strides(), (Shape{3, 1}));
  EXPECT_EQ(t.numel(), 6);
  EXPECT_EQ(t.nbytes(), 24u);
  EXPECT_EQ(t.to_vector(), (std::vector<double>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(t.data<float>()[5], 6.0f);
}

TEST(Tensor, CopiesShareStorageAndCloneDoesNot) {
  Tensor a = Tensor::zeros({3}, DType::kF32);
  Tensor b = a;
  Tensor c = a.clone();
  a.data<float>()[0] = 7;
  EXPECT_EQ(b.data<float>()[0], 7);
  EXPECT_EQ(c.data<float>()[0], 0);
}

TEST(Tensor, ViewsShareStorage) {
  Tensor a = Tensor::from_values({0, 1, 2, 3, 4, 5}, {2, 3});
  Tensor t = a.transpose(0, 1);
  EXPECT_FALSE(t.is_contiguous());
  EXPECT_EQ(t.shape(), (Shape{3, 2}));
  EXPECT_EQ(t.to_vector(), (std::vector<double>{0, 3, 1, 4, 2, 5}));
  Tensor s = a.slice(1, 1, 3);
  EXPECT_EQ(s.to_vector(), (std::vector<double>{1, 2, 4, 5}));
  Tensor r = a.reshape({3, -1});
  EXPECT_EQ(r.shape(), (Shape{3, 2}));
  a.data<float>()[4] = 40;
  EXPECT_EQ(r.to_vector()[4], 40);
  EXPECT_EQ(s.to_vector()[2], 40);
}

TEST(Tensor, EigenViewSharesMemoryAndHonoursStrides) {
  Tensor a = Tensor::from_values({1, 2, 3, 4, 5, 6}, {2, 3});
  auto m = eigen_matrix<float>(a);
  EXPECT_EQ(m(1, 2), 6.0f);
  m(0, 1) = 20;
  EXPECT_EQ(a.to_vector()[1], 20);
  auto t = eigen_matrix<float>(a.transpose(0, 1));  // no copy: strides (1, 3)
  EXPECT_EQ(t.rows(), 3);
  EXPECT_EQ(t(2, 1), 6.0f);
  EXPECT_EQ((m * t)(0, 0), 1 + 400 + 9);
  EXPECT_THROW(eigen_matrix<float>(Tensor::zeros({4}, DType::kF32)), std::invalid_argument);
}

TEST(Tensor, ContiguousCopiesStridedViews) {
  Tensor a = Tensor::from_values({0, 1, 2, 3, 4, 5}, {2, 3});
  Tensor c = a.transpose(0, 1).contiguous();
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(c.to_vector(), (std::vector<double>{0, 3, 1, 4, 2, 5}));
}

TEST(Tensor, CastsRoundToNearestEven) {
  // 1 + 2^-8 is halfway between two bf16 values; ties go to the even mantissa (1.0).
  Tensor a = Tensor::from_values({1.00390625, 1.01171875, -3.0, 1e6}, {4});
  EXPECT_EQ(a.to(DType::kBF16).to_vector(), (std::vector<double>{1.0, 1.015625, -3.0, 999424.0}));
  EXPECT_EQ(a.to(DType::kF16).to_vector()[0], 1.00390625);
  EXPECT_EQ(a.to(DType::kI32).to_vector(), (std::vector<double>{1, 1, -3, 1e6}));
  Tensor big = Tensor::from_values({9007199254740991.0}, {1}, DType::kI64);
  EXPECT_EQ(big.to(DType::kI64).to_vector()[0], 9007199254740991.0);
}

TEST(Tensor, MisuseFailsWithAHint) {
  Tensor a = Tensor::zeros({2, 3}, DType::kF32);
  EXPECT_THROW(a.data<int32_t>(), CheckError);
  EXPECT_THROW(a.reshape({4, 2}), CheckError);
  EXPECT_THROW(a.transpose(0, 1).reshape({6}), CheckError);
  EXPECT_THROW(a.slice(1, 2, 5), CheckError);
  EXPECT_THROW(matmul(a, a), CheckError);
  EXPECT_THROW(add(a, Tensor::zeros({3, 2}, DType::kF32)), CheckError);
  EXPECT_THROW(Tensor::zeros({-1}, DType::kF32), CheckError);
}

TEST(Tensor, WithoutAGpuCudaTensorsReportWhy) {
  if (cuda_available()) GTEST_SKIP() << "a GPU is present";
  try {
    Tensor::zeros({2}, DType::kF32, Device::kCUDA);
    FAIL();
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("CUDA"), std::string::npos) << e.what();
  }
}

TEST(FillNormal, IsReproducibleFromTheStream) {
  Tensor a = Tensor::empty({100}, DType::kF32), b = Tensor::empty({100}, DType::kF32);
  runtime::RngStream r1(3, 1), r2(3, 1);
  fill_normal(a, r1);
  fill_normal(b, r2);
  EXPECT_EQ(a.to_vector(), b.to_vector());
  double mean = 0;
  for (double v : a.to_vector()) mean += v / 100;
  EXPECT_LT(std::abs(mean), 0.35);
}

}  // namespace xp::tensor
