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
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
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

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &band_attention_forward, py::call_guard<py::gil_scoped_release>());
  m.def("backward", &band_attention_backward, py::call_guard<py::gil_scoped_release>());
}
