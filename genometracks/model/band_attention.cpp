// Windowed relative attention on the CPU, forward and backward: genometracks' own kernel.
//
// Keys come in two parts, the remembered ones (keys 0 .. M'-1) and the segment's own (keys M' .. M'+Lq-1, key
// M'+n belonging to query n), read where they lie (no concatenation). For stream b, head h and query n, the
// keys j of the window [n + M' - (W-1), n + M'] that exist (j >= first_key[b]) get the score
//     s = scale * q_n . k_j + g_n . enc[:, e],   e = W-1 - (n + M' - j)  (column e <-> distance W-1-e)
// and the output is softmax(s) . v. Work is split into tiles of `tile` queries of one (stream, head). A tile's
// scores live in one row-major buffer S [rows, rows + W - 1] whose column c is key ws + c (ws = the key of
// column 0 of the full window of the tile's first query), so query t's window is columns [t, t + W):
//   1. S = scale * Q K^T over the existing columns (one GEMM per key part);
//   2. the positional term, a dense [rows, W] product G Enc, is added straight onto the band by writing it with
//      a leading dimension of rows + W (one more than S's rows hold): row t lands on columns t .. t+W-1;
//   3. a softmax over each row's window (exp by MKL's vector maths), the rest of the row set to 0;
//   4. O = S V (one GEMM per part), each row divided by its sum.
// The backward recomputes S from the saved log-sum-exp and reads dS along the same band for the positional
// gradient. Matrix products and exp are MKL's (the symbols libtorch_cpu exports), so every step runs near the
// core's matrix-product rate; there is no per-element mask and no per-tile Python call. Float32 and float64.
// On a CPU with AVX-512, float32 has a second forward, `band_attention_fused_forward` (namespace fused below):
// the same function for the model's sinusoidal positional term, with hand-blocked products instead of MKL's.
#include <ATen/Parallel.h>
#include <torch/extension.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstdlib>
#include <cmath>
#include <type_traits>
#include <vector>

extern "C" {
void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*, const float*, const int*,
            const float*, const int*, const float*, float*, const int*);
void dgemm_(const char*, const char*, const int*, const int*, const int*, const double*, const double*, const int*,
            const double*, const int*, const double*, double*, const int*);
void vmsExp(int, const float*, float*, long long);
void vmdExp(int, const double*, double*, long long);
}

namespace {

constexpr long long kHighAccuracy = 0x2;  // VML_HA

// Row-major C[m, n] = alpha * op(A) op(B) + beta * C: op(A) [m, k] is A, or A^T of a stored [k, m] when
// a_transposed; op(B) [k, n] is B, or B^T of a stored [n, k] when b_transposed.
template <typename T>
void gemm(bool a_transposed, bool b_transposed, int m, int n, int k, T alpha, const T* a, int lda, const T* b, int ldb,
          T beta, T* c, int ldc) {
  // column-major view: C^T [n, m] = op(B)^T op(A)^T
  const char tb = b_transposed ? 'T' : 'N', ta = a_transposed ? 'T' : 'N';
  if constexpr (std::is_same_v<T, float>) {
    sgemm_(&tb, &ta, &n, &m, &k, &alpha, b, &ldb, a, &lda, &beta, c, &ldc);
  } else {
    dgemm_(&tb, &ta, &n, &m, &k, &alpha, b, &ldb, a, &lda, &beta, c, &ldc);
  }
}

// Softmax terms below e^kCutoff (2e-22) of a row's largest are set to exactly 0 instead of being computed: a
// trained model's scores span hundreds of units, and exp of such arguments underflows into MKL's slow
// underflow handling and denormal floats (measured: the trained paper model ran 15x slower without this).
// What is dropped is below float32's and far below float64's rounding of the row's sum.
constexpr double kCutoff = -50.0;

// x[i] = exp(x[i] - shift) for i < n, in place (0 where x[i] - shift < kCutoff); returns their sum.
template <typename T>
T exp_shifted(T* x, int64_t n, T shift) {
  const T low = static_cast<T>(kCutoff);
  for (int64_t i = 0; i < n; ++i) x[i] = std::max(x[i] - shift, low - 1);  // MKL never sees a deep underflow
  if constexpr (std::is_same_v<T, float>) {
    vmsExp(static_cast<int>(n), x, x, kHighAccuracy);
  } else {
    vmdExp(static_cast<int>(n), x, x, kHighAccuracy);
  }
  const T floor = std::exp(low);
  T sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = x[i] < floor ? T(0) : x[i];
    sum += x[i];
  }
  return sum;
}

// A [B, L, H, *] tensor's rows for one stream and head: pointer to row 0 and the row stride.
template <typename T>
struct Rows {
  T* data;
  int64_t stride;
  Rows(const torch::Tensor& t, int64_t b, int64_t h)
      : data(t.data_ptr<T>() + b * t.stride(0) + h * t.stride(2)),
        stride(t.size(1) > 1 ? t.stride(1) : std::max<int64_t>(t.stride(1), t.size(3))) {}  // MKL: ld >= d
  T* operator[](int64_t row) const { return data + row * stride; }
};

// The keys (or values, or their gradients) of one stream and head in two parts: key j < before is row j of
// the remembered part, key j >= before row j - before of the segment's own part (no concatenation needed).
template <typename T>
struct Keys {
  Rows<T> memory, fresh;
  int64_t before;
  Keys(const torch::Tensor& remembered, const torch::Tensor& own, int64_t b, int64_t h)
      : memory(remembered, b, h), fresh(own, b, h), before(remembered.size(1)) {}
  // calls fn(rows pointer, row stride, first key, key count) for the parts of keys [first, stop), in order
  template <typename F>
  void parts(int64_t first, int64_t stop, F fn) const {
    if (first < before) fn(memory[first], memory.stride, first, std::min(stop, before) - first);
    const int64_t from = std::max(first, before);
    if (stop > from) fn(fresh[from - before], fresh.stride, from, stop - from);
  }
};

// One tile: queries [n0, n0 + rows) of one stream and head; its score buffer's column c is key ws + c; columns
// before lo hold keys that do not exist.
struct Tile {
  int64_t n0, rows, cols, ws, lo;
  Tile(int64_t n0_, int64_t n_q, int64_t tile, int64_t window, int64_t before, int64_t first)
      : n0(n0_), rows(std::min(tile, n_q - n0_)), cols(rows + window - 1), ws(n0_ + before - (window - 1)),
        lo(std::max<int64_t>(0, std::max<int64_t>(first, 0) - ws)) {}
  int64_t start(int64_t t) const { return std::max(t, lo); }  // query t's first existing column
  int64_t stop(int64_t t) const { return t + cols - rows + 1; }  // one past its last (t + W)
};

// Scores of a tile into s [rows, cols] (row-major): scale * q.k on existing columns plus the positional band;
// columns before lo are left 0 + band (never read).
template <typename T>
void scores(const Tile& tile, const Rows<T>& q, const Keys<T>& k, const Rows<T>& g, const T* enc, int64_t window,
            int64_t d, int64_t d_pos, T scale, T* s) {
  for (int64_t t = 0; t < tile.rows && tile.lo; ++t) std::fill(s + t * tile.cols, s + t * tile.cols + tile.lo, T(0));
  k.parts(tile.ws + tile.lo, tile.ws + tile.cols, [&](const T* rows, int64_t stride, int64_t key, int64_t count) {
    gemm<T>(false, true, tile.rows, count, d, scale, q[tile.n0], q.stride, rows, stride, T(0), s + (key - tile.ws),
            tile.cols);
  });
  // the [rows, W] product G Enc written with leading dimension cols + 1: row t lands on columns t .. t+W-1
  gemm<T>(false, false, tile.rows, window, d_pos, T(1), g[tile.n0], g.stride, enc, window, T(1), s, tile.cols + 1);
}

template <typename T>
void forward(const torch::Tensor& q, const torch::Tensor& k_mem, const torch::Tensor& k, const torch::Tensor& v_mem,
             const torch::Tensor& v, const torch::Tensor& g, const torch::Tensor& enc, const torch::Tensor& first_key,
             T scale, int64_t tile_rows, torch::Tensor& out, torch::Tensor& lse) {
  const int64_t streams = q.size(0), n_q = q.size(1), heads = q.size(2), d = q.size(3);
  const int64_t window = enc.size(1), d_pos = enc.size(0), before = k_mem.size(1);
  const T* ep = enc.data_ptr<T>();
  const int64_t* first = first_key.data_ptr<int64_t>();
  T* lp = lse.numel() ? lse.data_ptr<T>() : nullptr;
  // (stream, head) pairs share out over torch's intra-op threads (one each in the model's stream-group threads)
  at::parallel_for(0, streams * heads, 1, [&](int64_t pair_begin, int64_t pair_end) {
    std::vector<T> buffer(tile_rows * (tile_rows + window) + tile_rows);
    T* s = buffer.data();
    T* inverse = s + tile_rows * (tile_rows + window);
    for (int64_t pair = pair_begin; pair < pair_end; ++pair) {
      const int64_t b = pair / heads, h = pair % heads;
      const Rows<T> rq(q, b, h), rg(g, b, h), ro(out, b, h);
      const Keys<T> rk(k_mem, k, b, h), rv(v_mem, v, b, h);
      for (int64_t n0 = 0; n0 < n_q; n0 += tile_rows) {
        const Tile tile(n0, n_q, tile_rows, window, before, first[b]);
        const int64_t cols = tile.cols, lo = tile.lo;
        scores<T>(tile, rq, rk, rg, ep, window, d, d_pos, scale, s);
        for (int64_t t = 0; t < tile.rows; ++t) {
          T* row = s + t * cols;
          const int64_t start = tile.start(t), stop = tile.stop(t);
          T top = row[start];  // scores are finite: no infinities (the build uses -ffast-math)
          for (int64_t j = start + 1; j < stop; ++j) top = std::max(top, row[j]);
          const T sum = exp_shifted<T>(row + start, stop - start, top);
          std::fill(row + lo, row + start, T(0));
          std::fill(row + stop, row + cols, T(0));
          inverse[t] = T(1) / sum;
          if (lp) lp[(b * heads + h) * n_q + n0 + t] = top + std::log(sum);
        }
        T* o = ro[n0];
        T beta = 0;
        rv.parts(tile.ws + lo, tile.ws + cols, [&](const T* rows, int64_t stride, int64_t key, int64_t count) {
          gemm<T>(false, false, tile.rows, d, count, T(1), s + (key - tile.ws), cols, rows, stride, beta, o, ro.stride);
          beta = 1;
        });
        for (int64_t t = 0; t < tile.rows; ++t) {
          for (int64_t e = 0; e < d; ++e) o[t * ro.stride + e] *= inverse[t];
        }
      }
    }
  });
}

// Gradients of the forward: dq [B, Lq, H, D] and dg [B, Lq, H, d_pos] written, dk and dv [B, K, H, D] (zeroed
// by the caller) accumulated, their remembered part only when memory_grads. Per tile, from the scores
// recomputed and the saved log-sum-exp:
//   P = exp(S - lse); dP = dO V^T; dS = P (dP - rowsum(dO * O)); dV += P^T dO; dQ = scale dS K;
//   dK += scale dS^T Q; dG = band(dS) Enc^T (dS read along the band with leading dimension cols + 1).
template <typename T>
void backward(const torch::Tensor& grad_out, const torch::Tensor& q, const torch::Tensor& k_mem, const torch::Tensor& k,
              const torch::Tensor& v_mem, const torch::Tensor& v, const torch::Tensor& g, const torch::Tensor& enc,
              const torch::Tensor& first_key, const torch::Tensor& out, const torch::Tensor& lse, T scale,
              int64_t tile_rows, bool memory_grads, torch::Tensor& dq, torch::Tensor& dk_mem, torch::Tensor& dk,
              torch::Tensor& dv_mem, torch::Tensor& dv, torch::Tensor& dg) {
  const int64_t streams = q.size(0), n_q = q.size(1), heads = q.size(2), d = q.size(3);
  const int64_t window = enc.size(1), d_pos = enc.size(0), before = k_mem.size(1);
  const T* ep = enc.data_ptr<T>();
  const T* lp = lse.data_ptr<T>();
  const int64_t* first = first_key.data_ptr<int64_t>();
  const int64_t area = tile_rows * (tile_rows + window);
  // one (stream, head) pair per task: its tiles accumulate into the same key and value gradients
  at::parallel_for(0, streams * heads, 1, [&](int64_t pair_begin, int64_t pair_end) {
    std::vector<T> buffer(2 * area + tile_rows);
    T* s = buffer.data();
    T* dp = s + area;
    T* delta = dp + area;
    for (int64_t pair = pair_begin; pair < pair_end; ++pair) {
      const int64_t b = pair / heads, h = pair % heads;
      const Rows<T> rq(q, b, h), rg(g, b, h), ro(out, b, h), rdo(grad_out, b, h), rdq(dq, b, h), rdg(dg, b, h);
      const Keys<T> rk(k_mem, k, b, h), rv(v_mem, v, b, h), rdk(dk_mem, dk, b, h), rdv(dv_mem, dv, b, h);
      const T* row_lse = lp + (b * heads + h) * n_q;
      for (int64_t n0 = 0; n0 < n_q; n0 += tile_rows) {
        const Tile tile(n0, n_q, tile_rows, window, before, first[b]);
        const int64_t cols = tile.cols, lo = tile.lo;
        scores<T>(tile, rq, rk, rg, ep, window, d, d_pos, scale, s);
        rv.parts(tile.ws + lo, tile.ws + cols, [&](const T* rows, int64_t stride, int64_t key, int64_t count) {
          gemm<T>(false, true, tile.rows, count, d, T(1), rdo[n0], rdo.stride, rows, stride, T(0), dp + (key - tile.ws),
                  cols);
        });
        for (int64_t t = 0; t < tile.rows; ++t) {
          const T* o = ro[n0 + t];
          const T* go = rdo[n0 + t];
          T dot = 0;
          for (int64_t e = 0; e < d; ++e) dot += o[e] * go[e];
          delta[t] = dot;
        }
        for (int64_t t = 0; t < tile.rows; ++t) {
          T* row = s + t * cols;
          T* grad = dp + t * cols;
          const int64_t start = tile.start(t), stop = tile.stop(t);
          exp_shifted<T>(row + start, stop - start, row_lse[n0 + t]);  // P
          for (int64_t j = start; j < stop; ++j) grad[j] = row[j] * (grad[j] - delta[t]);  // dS
          std::fill(row, row + start, T(0));
          std::fill(row + stop, row + cols, T(0));
          std::fill(grad, grad + start, T(0));
          std::fill(grad + stop, grad + cols, T(0));
        }
        const int64_t first_key_of_tile = tile.ws + lo, stop = tile.ws + cols;
        // dV += P^T dO and dK += scale dS^T Q, part by part (the key rows of each part are written in place);
        // the remembered keys' rows only when their gradients are asked for
        const int64_t first_grad = memory_grads ? first_key_of_tile : std::max(first_key_of_tile, before);
        auto accumulate = [&](const Keys<T>& grads, const T* weights, T alpha, const Rows<T>& rhs) {
          grads.parts(first_grad, stop, [&](const T* rows, int64_t stride, int64_t key, int64_t count) {
            gemm<T>(true, false, count, d, tile.rows, alpha, weights + (key - tile.ws), cols, rhs[n0], rhs.stride, T(1),
                    const_cast<T*>(rows), stride);
          });
        };
        accumulate(rdv, s, T(1), rdo);
        accumulate(rdk, dp, scale, rq);
        T beta = 0;
        rk.parts(first_key_of_tile, stop, [&](const T* rows, int64_t stride, int64_t key, int64_t count) {
          gemm<T>(false, false, tile.rows, d, count, scale, dp + (key - tile.ws), cols, rows, stride, beta, rdq[n0],
                  rdq.stride);
          beta = 1;
        });
        gemm<T>(false, true, tile.rows, d_pos, window, T(1), dp, cols + 1, ep, window, T(0), rdg[n0], rdg.stride);
      }
    }
  });
}

// Whether the rows of a [B, L, H, D] tensor lie apart: an expanded view's row stride 0 (or any stride
// below D) would reach MKL as a leading dimension it refuses, leaving the product unwritten.
bool rows_apart(const torch::Tensor& t) { return t.size(1) <= 1 || t.stride(1) >= t.size(3); }

// Checks the layout the kernel reads (rows of d contiguous values); throws on misuse.
void check(const torch::Tensor& q, const torch::Tensor& k_mem, const torch::Tensor& k, const torch::Tensor& v_mem,
           const torch::Tensor& v, const torch::Tensor& g, const torch::Tensor& enc, const torch::Tensor& first_key,
           int64_t tile) {
  TORCH_CHECK(q.dim() == 4 && k_mem.dim() == 4 && k.dim() == 4 && v_mem.dim() == 4 && v.dim() == 4 && g.dim() == 4 &&
                  enc.dim() == 2,
              "band_attention: q, keys, values, g are [B, L, H, D]-shaped and enc [d_pos, W]");
  TORCH_CHECK(q.device().is_cpu() && (q.scalar_type() == torch::kFloat || q.scalar_type() == torch::kDouble),
              "band_attention: float32 or float64 CPU tensors");
  for (const auto* t : {&k_mem, &k, &v_mem, &v, &g, &enc}) {
    TORCH_CHECK(t->scalar_type() == q.scalar_type() && t->device().is_cpu(), "band_attention: one dtype, CPU");
  }
  for (const auto* t : {&q, &k_mem, &k, &v_mem, &v, &g}) {
    TORCH_CHECK(t->stride(3) == 1 && t->size(0) == q.size(0) && t->size(2) == q.size(2),
                "band_attention: [B, L, H, D] with D contiguous, one B and H for all");
    TORCH_CHECK(rows_apart(*t), "band_attention: rows overlap (stride(1) < D, an expanded view?); pass a contiguous tensor");
  }
  TORCH_CHECK(enc.is_contiguous() && enc.size(0) == g.size(3), "band_attention: enc [d_pos, W] contiguous");
  TORCH_CHECK(k.sizes() == q.sizes() && v.sizes() == q.sizes() && k_mem.sizes() == v_mem.sizes() &&
                  k_mem.size(3) == q.size(3) && g.size(1) == q.size(1),
              "band_attention: the segment's keys and values are shaped like q, the remembered ones alike");
  TORCH_CHECK(k_mem.size(1) <= enc.size(1) - 1, "band_attention: at most W-1 keys before the first query");
  TORCH_CHECK(first_key.scalar_type() == torch::kLong && first_key.numel() == q.size(0) && first_key.is_contiguous(),
              "band_attention: first_key int64 [B]");
  TORCH_CHECK(first_key.numel() == 0 || first_key.max().item<int64_t>() <= k_mem.size(1),
              "band_attention: every query's own key must exist");
  TORCH_CHECK(tile >= 1, "band_attention: tile >= 1");
}

#if defined(__AVX512F__)
// ---- The float32 forward as one fused AVX-512 pass per tile (64 queries = 4 vectors of 16 lanes) -------------
// For the model's sinusoidal positional term (`band_attention_fused_forward`). MKL's small products above reach
// 100-150 GFLOP/s on the tile shapes ([64 x 32] x [32 x 575]); this keeps a tile's scores transposed, S^T [cols,
// 64] (column c <-> row c; query t <-> lane t % 16 of vector t / 16), so every product is register-blocked over
// 16 queries at once (6 columns x 4 vectors of accumulators):
//   1. S^T = scale K Q^T + the positional term, the latter by the rotation in `forward` as a second product of
//      the same shape (the band's per-query shift would otherwise need an unaligned load per multiply-add); each
//      block of 6 columns only for the vectors whose windows reach it;
//   2. a softmax down each lane (the vector's max, exp with the e^-50 cut-off, sum), lanes outside their
//      window zeroed, as the scalar kernel's rows;
//   3. O^T = V^T P^T, then divided by the sums and transposed into the output rows.
// Same function as `forward` above to float32 rounding (tests/test_kernel.py compares both with the definition).
namespace fused {

constexpr int64_t kRows = 64, kLanes = 16;  // queries per tile, lanes per vector

// exp(x) for x in [kCutoff, 0] (Cephes' expf: Cody-Waite reduction, degree-5 polynomial, 2^n by scalef); ~1 ulp.
// Lanes outside that range get some value that the caller masks away.
inline __m512 exp_nonpositive(__m512 x) {
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

// Scores of NC consecutive columns (rows of S^T) for NV query vectors: the content term from the keys' rows
// (column c0 + k: `key[k]`, d values) against qt [d, 64] (scale folded in), plus the positional term from the
// columns' sinusoid features (`feature[k]`, d_pos values) against the rotated g, gt [d_pos, 64].
template <int NC, int NV>
[[gnu::always_inline]] inline void score_columns(const float* const* key, int64_t d, const float* qt,
                                                 const float* const* feature,
                          int64_t d_pos, const float* gt, float* st) {
  __m512 acc[NC][NV];
#pragma GCC unroll 8
  for (int k = 0; k < NC; ++k)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[k][v] = _mm512_setzero_ps();
  for (int part = 0; part < 2; ++part) {  // the content term, then the positional
    const float* const* rows = part ? feature : key;
    const float* t = part ? gt : qt;
    const int64_t n = part ? d_pos : d;
    for (int64_t i = 0; i < n; ++i) {
      __m512 q[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) q[v] = _mm512_load_ps(t + i * kRows + v * kLanes);
#pragma GCC unroll 8
      for (int k = 0; k < NC; ++k) {
        const __m512 b = _mm512_set1_ps(rows[k][i]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[k][v] = _mm512_fmadd_ps(b, q[v], acc[k][v]);
      }
    }
  }
#pragma GCC unroll 8
  for (int k = 0; k < NC; ++k)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) _mm512_store_ps(st + k * kRows + v * kLanes, acc[k][v]);
}

// ot[e0 + k, :] (+)= sum over columns [c0, c1) of value row c's entry e0 + k times S^T row c (NE dimensions, NV
// vectors); added to what ot holds when `add`
template <int NE, int NV>
[[gnu::always_inline]] inline void value_dims(const float* const* value, int64_t c0, int64_t c1, int64_t e0,
                                              const float* st, float* ot, bool add) {
  __m512 acc[NE][NV];
#pragma GCC unroll 8
  for (int k = 0; k < NE; ++k)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v)
      acc[k][v] = add ? _mm512_load_ps(ot + (e0 + k) * kRows + v * kLanes) : _mm512_setzero_ps();
  for (int64_t c = c0; c < c1; ++c) {
    __m512 p[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) p[v] = _mm512_load_ps(st + c * kRows + v * kLanes);
    const float* row = value[c] + e0;
#pragma GCC unroll 8
    for (int k = 0; k < NE; ++k) {
      const __m512 b = _mm512_set1_ps(row[k]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[k][v] = _mm512_fmadd_ps(b, p[v], acc[k][v]);
    }
  }
#pragma GCC unroll 8
  for (int k = 0; k < NE; ++k)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) _mm512_store_ps(ot + (e0 + k) * kRows + v * kLanes, acc[k][v]);
}

template <int NE, int NV>
void value_block(const float* const* value, int64_t c0, int64_t c1, int64_t e0, int64_t count, const float* st,
                 float* ot, bool add) {
  if constexpr (NE > 1) {
    if (count < NE) return value_block<NE - 1, NV>(value, c0, c1, e0, count, st, ot, add);
  }
  value_dims<NE, NV>(value, c0, c1, e0, st, ot, add);
}

template <int NC, int NV>
void score_block(const float* const* key, int64_t count, int64_t d, const float* qt, const float* const* feature,
                 int64_t d_pos, const float* gt, float* st) {
  if constexpr (NC > 1) {
    if (count < NC) return score_block<NC - 1, NV>(key, count, d, qt, feature, d_pos, gt, st);
  }
  score_columns<NC, NV>(key, d, qt, feature, d_pos, gt, st);
}

// Step 3 of a tile whose queries fill NV vectors (a segment's last tile may fill fewer than 4): ot = V^T P^T over
// columns [lo, cols), in chunks of 64 columns (16 KB of S^T, in L1) with every block of 6 dimensions before the next.
template <int NV>
void values(const float* const* value, int64_t lo, int64_t cols, int64_t d, const float* st, float* ot) {
  for (int64_t c = lo; c < cols; c += 64)
    for (int64_t e0 = 0; e0 < d; e0 += 6)
      value_block<6, NV>(value, c, std::min<int64_t>(c + 64, cols), e0, std::min<int64_t>(6, d - e0), st, ot, c > lo);
}

void all_values(int64_t nv, const float* const* value, int64_t lo, int64_t cols, int64_t d, const float* st, float* ot) {
  switch (nv) {
    case 1: return values<1>(value, lo, cols, d, st, ot);
    case 2: return values<2>(value, lo, cols, d, st, ot);
    case 3: return values<3>(value, lo, cols, d, st, ot);
    default: return values<4>(value, lo, cols, d, st, ot);
  }
}

// Scores of columns [c, c + count) for vectors [v0, v0 + nv) only (the other vectors' windows miss them).
void score_vectors(int64_t v0, int64_t nv, const float* const* key, int64_t count, int64_t d, const float* qt,
                   const float* const* feature, int64_t d_pos, const float* gt, float* st) {
  const int64_t shift = v0 * kLanes;
  switch (nv) {
    case 1: return score_block<6, 1>(key, count, d, qt + shift, feature, d_pos, gt + shift, st + shift);
    case 2: return score_block<6, 2>(key, count, d, qt + shift, feature, d_pos, gt + shift, st + shift);
    case 3: return score_block<6, 3>(key, count, d, qt + shift, feature, d_pos, gt + shift, st + shift);
    default: return score_block<6, 4>(key, count, d, qt + shift, feature, d_pos, gt + shift, st + shift);
  }
}

// Step 1 over columns [lo, cols), 6 at a time, each block for the vectors whose windows reach it: vector v (queries
// 16v .. 16v+15) reads columns [16v, 16v + 15 + W).
void all_scores(int64_t nv, int64_t window, const float* const* key, int64_t lo, int64_t cols, int64_t d,
                const float* qt, const float* const* feature, int64_t d_pos, const float* gt, float* st) {
  for (int64_t c = lo; c < cols; c += 6) {
    const int64_t count = std::min<int64_t>(6, cols - c), last = c + count - 1;
    const int64_t v_first = std::max<int64_t>(0, (c - window + 1) / kLanes);  // ceil((c - (W + 14)) / 16)
    const int64_t v_last = std::min<int64_t>(nv - 1, last / kLanes);
    if (v_last >= v_first)
      score_vectors(v_first, v_last - v_first + 1, key + c, count, d, qt, feature + c, d_pos, gt, st + c * kRows);
  }
}

struct Aligned {  // 64-byte aligned float buffer
  float* data;
  explicit Aligned(int64_t n) : data(static_cast<float*>(std::aligned_alloc(64, ((n * 4 + 63) / 64) * 64))) {}
  ~Aligned() { std::free(data); }
  Aligned(const Aligned&) = delete;
  Aligned& operator=(const Aligned&) = delete;
};

// The positional term of the sinusoids, enc[:, e] = pos_scale [sin(r w), cos(r w)] at distance r = W-1-e
// (frequencies w [d_pos / 2]), split by sin(a - b) = sin a cos b - cos a sin b into a rotation of each query's
// g by a_t = (W-1+t) w (t the query's row in its tile) and features of each column c of the tile, pos_scale
// [cos(c w), sin(c w)]: the same for every tile, so the band becomes a product like the content's.
void forward(const torch::Tensor& q, const torch::Tensor& k_mem, const torch::Tensor& k, const torch::Tensor& v_mem,
             const torch::Tensor& v, const torch::Tensor& g, const torch::Tensor& frequencies, double pos_scale,
             int64_t window, const torch::Tensor& first_key, float scale, torch::Tensor& out, torch::Tensor& lse) {
  const int64_t streams = q.size(0), n_q = q.size(1), heads = q.size(2), d = q.size(3);
  const int64_t half = frequencies.size(0), d_pos = 2 * half, before = k_mem.size(1);
  const int64_t max_cols = kRows + window - 1;
  const double* w = frequencies.data_ptr<double>();
  Aligned features(max_cols * d_pos);  // computed in float64, stored float32
  std::vector<double> sin_a(kRows * half), cos_a(kRows * half);
  for (int64_t c = 0; c < max_cols; ++c)
    for (int64_t i = 0; i < half; ++i) {
      features.data[c * d_pos + i] = static_cast<float>(pos_scale * std::cos(c * w[i]));
      features.data[c * d_pos + half + i] = static_cast<float>(pos_scale * std::sin(c * w[i]));
    }
  for (int64_t t = 0; t < kRows; ++t)
    for (int64_t i = 0; i < half; ++i) {
      sin_a[t * half + i] = std::sin((window - 1 + t) * w[i]);
      cos_a[t * half + i] = std::cos((window - 1 + t) * w[i]);
    }
  std::vector<const float*> feature(max_cols);
  for (int64_t c = 0; c < max_cols; ++c) feature[c] = features.data + c * d_pos;
  const int64_t* first = first_key.data_ptr<int64_t>();
  float* lp = lse.numel() ? lse.data_ptr<float>() : nullptr;
  at::parallel_for(0, streams * heads, 1, [&](int64_t pair_begin, int64_t pair_end) {
    Aligned qt(d * kRows), gt(d_pos * kRows), ot(d * kRows), st(max_cols * kRows);
    std::vector<const float*> key(max_cols), value(max_cols);
    alignas(64) float inverse[kRows];
    alignas(64) float top[kRows];
    const __m512i iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    for (int64_t pair = pair_begin; pair < pair_end; ++pair) {
      const int64_t b = pair / heads, h = pair % heads;
      const Rows<float> rq(q, b, h), rg(g, b, h), ro(out, b, h);
      const Keys<float> rk(k_mem, k, b, h), rv(v_mem, v, b, h);
      for (int64_t n0 = 0; n0 < n_q; n0 += kRows) {
        const Tile tile(n0, n_q, kRows, window, before, first[b]);
        const int64_t rows = tile.rows, cols = tile.cols, lo = tile.lo;
        // queries transposed into [d, 64], g rotated and transposed into [d_pos, 64] (rows past the tile's end zero)
        for (int64_t t = 0; t < kRows; ++t) {
          const float* qr = t < rows ? rq[n0 + t] : nullptr;
          const float* gr = t < rows ? rg[n0 + t] : nullptr;
          for (int64_t i = 0; i < d; ++i) qt.data[i * kRows + t] = qr ? scale * qr[i] : 0.0f;
          for (int64_t i = 0; i < half; ++i) {
            const double gs = gr ? gr[i] : 0.0, gc = gr ? gr[half + i] : 0.0;  // rotated in float64, rounded once
            const double sa = sin_a[t * half + i], ca = cos_a[t * half + i];
            gt.data[i * kRows + t] = static_cast<float>(gs * sa + gc * ca);  // pairs with cos(c w)
            gt.data[(half + i) * kRows + t] = static_cast<float>(gc * sa - gs * ca);  // pairs with sin(c w)
          }
        }
        for (int64_t c = lo; c < cols; ++c) {
          const int64_t j = tile.ws + c;
          key[c] = j < before ? rk.memory[j] : rk.fresh[j - before];
          value[c] = j < before ? rv.memory[j] : rv.fresh[j - before];
        }
        // 1. scores, 6 columns at a time, over the vectors the tile's queries fill
        const int64_t nv = (rows + kLanes - 1) / kLanes;
        all_scores(nv, window, key.data(), lo, cols, d, qt.data, feature.data(), d_pos, gt.data, st.data);
        // 2. softmax down each lane of each vector over its window [t, t + W) and the existing columns
        for (int64_t vec = 0; vec < nv; ++vec) {
          const int64_t t0 = vec * kLanes;
          const __mmask16 lanes = rows - t0 >= kLanes ? __mmask16(0xFFFF)
                                  : rows > t0         ? __mmask16((1u << (rows - t0)) - 1)
                                                      : __mmask16(0);
          const int64_t c_first = std::max(lo, t0), c_stop = std::min(cols, t0 + kLanes - 1 + window);
          auto in_window = [&](int64_t c) {  // lanes whose window holds column c
            const __m512i e = _mm512_sub_epi32(_mm512_set1_epi32(static_cast<int>(c - t0)), iota);
            return static_cast<__mmask16>(lanes & _mm512_cmpge_epi32_mask(e, _mm512_setzero_si512()) &
                                          _mm512_cmplt_epi32_mask(e, _mm512_set1_epi32(static_cast<int>(window))));
          };
          // columns [c_first, c_stop) reach some lane's window; in [full_first, full_stop) every lane's
          const int64_t full_first = std::min(std::max(c_first, t0 + kLanes - 1), c_stop);
          const int64_t full_stop = std::max(std::min(c_stop, t0 + window), full_first);
          __m512 m = _mm512_set1_ps(-3.0e38f);
          for (int64_t c = c_first; c < full_first; ++c)
            m = _mm512_mask_max_ps(m, in_window(c), m, _mm512_load_ps(st.data + c * kRows + t0));
          for (int64_t c = full_first; c < full_stop; ++c)
            m = _mm512_mask_max_ps(m, lanes, m, _mm512_load_ps(st.data + c * kRows + t0));
          for (int64_t c = full_stop; c < c_stop; ++c)
            m = _mm512_mask_max_ps(m, in_window(c), m, _mm512_load_ps(st.data + c * kRows + t0));
          __m512 sum = _mm512_setzero_ps();
          const __m512 cutoff = _mm512_set1_ps(static_cast<float>(kCutoff));
          auto exp_cell = [&](int64_t c, __mmask16 window_lanes) {  // cell <- exp(cell - m) on those lanes, else 0
            float* cell = st.data + c * kRows + t0;
            const __m512 x = _mm512_sub_ps(_mm512_load_ps(cell), m);
            const __m512 p = _mm512_maskz_mov_ps(window_lanes & _mm512_cmp_ps_mask(x, cutoff, _CMP_GE_OQ), exp_nonpositive(x));
            _mm512_store_ps(cell, p);
            sum = _mm512_add_ps(sum, p);
          };
          for (int64_t c = lo; c < c_first; ++c) _mm512_store_ps(st.data + c * kRows + t0, _mm512_setzero_ps());
          for (int64_t c = c_first; c < full_first; ++c) exp_cell(c, in_window(c));
          for (int64_t c = full_first; c < full_stop; ++c) exp_cell(c, lanes);
          for (int64_t c = full_stop; c < c_stop; ++c) exp_cell(c, in_window(c));
          for (int64_t c = c_stop; c < cols; ++c) _mm512_store_ps(st.data + c * kRows + t0, _mm512_setzero_ps());
          const __mmask16 some = _mm512_cmp_ps_mask(sum, _mm512_setzero_ps(), _CMP_GT_OQ);
          _mm512_store_ps(inverse + t0, _mm512_maskz_div_ps(some, _mm512_set1_ps(1.0f), sum));
          if (lp) {
            _mm512_store_ps(top + t0, m);
            alignas(64) float sums[kLanes];
            _mm512_store_ps(sums, sum);
            for (int64_t l = 0; l < kLanes && t0 + l < rows; ++l)
              lp[(b * heads + h) * n_q + n0 + t0 + l] = top[t0 + l] + std::log(sums[l]);
          }
        }
        // 3. O^T = V^T P^T over the existing columns; rows scaled and transposed out
        all_values(nv, value.data(), lo, cols, d, st.data, ot.data);
        for (int64_t t = 0; t < rows; ++t) {
          float* o = ro[n0 + t];
          const float w = inverse[t];
          for (int64_t e = 0; e < d; ++e) o[e] = ot.data[e * kRows + t] * w;
        }
      }
    }
  });
}

}  // namespace fused
#endif

}  // namespace

// q [B, Lq, H, D] (scores use it as is: fold u in first); keys and values in two parts, the remembered ones
// k_mem, v_mem [B, M', H, D] (keys 0 .. M'-1, M' <= W-1) and the segment's own k, v [B, Lq, H, D] (keys
// M' .. M'+Lq-1, key M'+n belonging to query n); g [B, Lq, H, d_pos], enc [d_pos, W] (column e <-> distance
// W-1-e, the positional scale folded in); first_key int64 [B] (keys before it do not exist). Returns the output
// [B, Lq, H, D] and, with want_lse, each query's log-sum-exp of its scores [B, H, Lq] (an empty tensor
// otherwise). The GIL is released: worker threads run this concurrently.
std::vector<torch::Tensor> band_attention_forward(torch::Tensor q, torch::Tensor k_mem, torch::Tensor k,
                                                  torch::Tensor v_mem, torch::Tensor v, torch::Tensor g,
                                                  torch::Tensor enc, torch::Tensor first_key, double scale,
                                                  int64_t tile, bool want_lse) {
  check(q, k_mem, k, v_mem, v, g, enc, first_key, tile);
  auto out = torch::empty(q.sizes(), q.options());
  auto lse = want_lse ? torch::empty({q.size(0), q.size(2), q.size(1)}, q.options()) : torch::empty({0}, q.options());
  if (q.scalar_type() == torch::kFloat) {
    forward<float>(q, k_mem, k, v_mem, v, g, enc, first_key, static_cast<float>(scale), tile, out, lse);
  } else {
    forward<double>(q, k_mem, k, v_mem, v, g, enc, first_key, scale, tile, out, lse);
  }
  return {out, lse};
}

// Gradients for band_attention_forward's inputs from grad_out [B, Lq, H, D], the forward's output and
// log-sum-exp: returns dq, dk_mem, dk, dv_mem, dv, dg (shapes of q, k_mem, k, v_mem, v, g; contiguous). With
// memory_grads false the remembered keys' and values' gradients are not computed (half of the key and value
// gradient products when a segment carries a full memory) and come back undefined (None in Python).
std::vector<torch::Tensor> band_attention_backward(torch::Tensor grad_out, torch::Tensor q, torch::Tensor k_mem,
                                                   torch::Tensor k, torch::Tensor v_mem, torch::Tensor v,
                                                   torch::Tensor g, torch::Tensor enc, torch::Tensor first_key,
                                                   torch::Tensor out, torch::Tensor lse, double scale, int64_t tile,
                                                   bool memory_grads) {
  check(q, k_mem, k, v_mem, v, g, enc, first_key, tile);
  TORCH_CHECK(grad_out.sizes() == q.sizes() && out.sizes() == q.sizes() && grad_out.stride(3) == 1 &&
                  out.stride(3) == 1 && grad_out.scalar_type() == q.scalar_type() &&
                  out.scalar_type() == q.scalar_type() && rows_apart(grad_out) && rows_apart(out),
              "band_attention_backward: grad_out and out are like q (rows apart, D contiguous)");
  TORCH_CHECK(lse.is_contiguous() && lse.scalar_type() == q.scalar_type() && lse.dim() == 3 &&
                  lse.size(0) == q.size(0) && lse.size(1) == q.size(2) && lse.size(2) == q.size(1),
              "band_attention_backward: lse [B, H, Lq] contiguous, q's dtype");
  auto dq = torch::empty(q.sizes(), q.options());
  auto dg = torch::empty(g.sizes(), g.options());
  auto dk = torch::zeros(k.sizes(), k.options()), dv = torch::zeros(v.sizes(), v.options());
  // without memory gradients the remembered rows are never written: uninitialised buffers stand in for them
  auto remembered = [&](const torch::Tensor& like) {
    return memory_grads ? torch::zeros(like.sizes(), like.options()) : torch::empty(like.sizes(), like.options());
  };
  auto dk_mem = remembered(k_mem), dv_mem = remembered(v_mem);
  if (q.scalar_type() == torch::kFloat) {
    backward<float>(grad_out, q, k_mem, k, v_mem, v, g, enc, first_key, out, lse, static_cast<float>(scale), tile,
                    memory_grads, dq, dk_mem, dk, dv_mem, dv, dg);
  } else {
    backward<double>(grad_out, q, k_mem, k, v_mem, v, g, enc, first_key, out, lse, scale, tile, memory_grads, dq,
                     dk_mem, dk, dv_mem, dv, dg);
  }
  if (!memory_grads) return {dq, torch::Tensor(), dk, torch::Tensor(), dv, dg};
  return {dq, dk_mem, dk, dv_mem, dv, dg};
}

// band_attention_forward in float32 for the sinusoidal positional term of the model, enc[:, e] = pos_scale
// [sin(r w), cos(r w)] at distance r = W-1-e (frequencies w float64 [d_pos / 2]; no enc tensor), on the fused
// AVX-512 path (tiles of 64 queries). Same inputs and results otherwise; `has_fused()` says whether the build has it.
std::vector<torch::Tensor> band_attention_fused_forward(torch::Tensor q, torch::Tensor k_mem, torch::Tensor k,
                                                        torch::Tensor v_mem, torch::Tensor v, torch::Tensor g,
                                                        torch::Tensor frequencies, double pos_scale, int64_t window,
                                                        torch::Tensor first_key, double scale, bool want_lse) {
#if defined(__AVX512F__)
  TORCH_CHECK(q.scalar_type() == torch::kFloat, "band_attention_fused_forward: float32 tensors");
  TORCH_CHECK(frequencies.scalar_type() == torch::kDouble && frequencies.dim() == 1 && frequencies.is_contiguous() &&
                  g.dim() == 4 && g.size(3) == 2 * frequencies.size(0),
              "band_attention_fused_forward: frequencies float64 [d_pos / 2] contiguous, g [B, Lq, H, d_pos]");
  TORCH_CHECK(window >= 1, "band_attention_fused_forward: window >= 1");
  // the shape and layout checks of the scalar kernel, on a stand-in for enc (never read)
  check(q, k_mem, k, v_mem, v, g, torch::empty({g.size(3), window}, q.options()), first_key, 1);
  auto out = torch::empty(q.sizes(), q.options());
  auto lse = want_lse ? torch::empty({q.size(0), q.size(2), q.size(1)}, q.options()) : torch::empty({0}, q.options());
  fused::forward(q, k_mem, k, v_mem, v, g, frequencies, pos_scale, window, first_key, static_cast<float>(scale), out,
                 lse);
  return {out, lse};
#else
  TORCH_CHECK(false, "band_attention_fused_forward: this build has no AVX-512 (has_fused() is false)");
  return {};
#endif
}

// Whether this build has the fused float32 forward (compiled for a CPU with AVX-512).
bool has_fused() {
#if defined(__AVX512F__)
  return true;
#else
  return false;
#endif
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &band_attention_forward, py::call_guard<py::gil_scoped_release>());
  m.def("fused_forward", &band_attention_fused_forward, py::call_guard<py::gil_scoped_release>());
  m.def("has_fused", &has_fused);
  m.def("backward", &band_attention_backward, py::call_guard<py::gil_scoped_release>());
}
