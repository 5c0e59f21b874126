// Backend: one compute device (the CPU, a GPU): the memory it owns and every operation of a forward pass.
//
// Memory. alloc() hands out tensors the backend owns until it is destroyed; load_weight() makes a weight
// usable on the device (the CPU backend uses the mapped GGUF bytes in place, a GPU backend copies them).
// All allocation happens while a model is loaded and an engine is set up (prepare()); the operations
// allocate nothing, so a step can be captured and replayed (CUDA graphs) and never fails for lack of memory.
//
// Operations take tensors on this device (views allowed, see tensor.h) and are queued in order: a GPU
// backend runs them asynchronously on its stream, the CPU backend at once. They never throw. An operation
// that fails (bad shapes, a kernel error) records the first error and the following ones are skipped until
// sync(), which waits for all queued work and returns that error (and clears it). upload() / download()
// move bytes between host memory and the device; download() returns once the bytes are on the host.
//
// Activations are float32. Shapes below use tensor.h's order, innermost first: {width, n_tokens}.
//
// Batch invariance: every operation computes each token's results with a reduction order that does not
// depend on the other tokens of the call (no batch-size-dependent split-K), so a token's result is the
// same alone or in a batch, and on every run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "kernels/routing.h"
#include "kernels/tensor.h"

namespace tandem {

// The largest step the engine will run, known when it is set up: backends size scratch memory from it.
struct StepLimits {
  int64_t max_tokens = 0;     // tokens per step (prefill chunks and decodes together)
  int64_t max_sequences = 0;  // sequences per step
  int64_t max_context = 0;    // positions a token can attend to
  int max_experts_per_token = 0;
  int64_t max_width = 0;      // values per token of the widest activation an operation reads (all heads)
};

// Where the keys and values of a step's tokens are in the paged KV cache (all I32 tensors on the device).
// Token t belongs to sequence seq_of_token[t] at position positions[t]; sequence s's pages are
// page_table[page_table_start[s] .. page_table_start[s + 1]) in position order; position p is in slot
// p % page_size of page p / page_size. A layer's cache is a tensor {slot_width, n_pages * page_size}.
struct PagedBatch {
  Tensor positions;         // I32 [n_tokens]
  Tensor seq_of_token;      // I32 [n_tokens]
  Tensor page_table_start;  // I32 [n_sequences + 1]
  Tensor page_table;        // I32 [page_table_start[n_sequences]]
  int page_size = 16;
  int64_t n_tokens = 0;
  int64_t n_sequences = 0;
  int64_t max_position = 0;  // largest position in the step (bounds the attention span)
};

// Where the keys and values of a head are within a cache slot (float offsets). Query head h reads KV
// head h / (n_heads / n_kv_heads). MLA's latent cache is one KV head whose key is the whole slot
// [latent | rope key] and whose value is its latent part.
struct KvLayout {
  int64_t n_kv_heads = 1;
  int64_t key_offset = 0, key_head_stride = 0, key_dim = 0;
  int64_t value_offset = 0, value_head_stride = 0, value_dim = 0;
};

// Rotary embedding: pairs (2i, 2i+1) if adjacent_pairs, else (i, i + n_dims/2), rotated by position *
// inv_freq[i], cos and sin scaled by attention_factor.
struct RopeSpec {
  Tensor inv_freq;  // F32 [n_dims / 2], on the device
  int n_dims = 0;
  bool adjacent_pairs = false;
  float attention_factor = 1.0f;
};

// The three matrices of a set of SwiGLU experts: out = down(silu(gate(x)) * up(x)).
struct ExpertWeights {
  Tensor gate;  // {n_embd, n_ff, n_experts}
  Tensor up;    // {n_embd, n_ff, n_experts}
  Tensor down;  // {n_ff, n_embd, n_experts}
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual std::string describe() const = 0;

  // --- memory (set-up time) ---
  // A zero-filled tensor of `type` with shape ne, owned by the backend.
  virtual Result<Tensor> alloc(GgmlType type, std::array<int64_t, 3> ne, const char* name) = 0;
  // Host memory suited to transfers with this device (page-locked for a GPU), owned by the backend.
  virtual Result<Tensor> alloc_host(GgmlType type, std::array<int64_t, 3> ne, const char* name) = 0;
  // The weight `host` (host memory that outlives the backend, e.g. the mapped GGUF) usable on this device.
  virtual Result<Tensor> load_weight(const Tensor& host) = 0;
  // Sizes per-thread / per-stream scratch memory for steps up to `limits` (may be called again to grow).
  virtual Status prepare(const StepLimits& limits) = 0;
  virtual size_t allocated_bytes() const = 0;  // alloc() and copied weights

  // --- transfers ---
  // dst (contiguous, on this device) = dst.bytes() bytes from host.
  virtual void upload(const void* host, const Tensor& dst) = 0;
  // host = src's bytes (src contiguous); returns when they are there.
  virtual void download(const Tensor& src, void* host) = 0;
  // As download(), but the bytes are only there once a later download() or sync() returns: several
  // transfers then cost one wait. The default downloads at once.
  virtual void download_later(const Tensor& src, void* host) { download(src, host); }

  // --- operations ---
  // out[i] = row ids[i] of table, as float.   ids: I32 [n], out: {table.cols, n}
  virtual void embed(const Tensor& table, const Tensor& ids, const Tensor& out) = 0;
  // out = x / sqrt(mean(x^2) + eps) * weight, per row.   x, out: {d, rows, slices}; weight: F32 [d]
  virtual void rms_norm(const Tensor& x, const Tensor& weight, float eps, const Tensor& out) = 0;
  // y[t][r] = sum_c W[mat][r][c] x[t][c].   w: {cols, rows, mats}; x: {cols, n}; y: {rows, n}
  virtual void matmul(const Tensor& w, int64_t mat, const Tensor& x, const Tensor& y) = 0;
  // y[t][h] = W[h] x[t][h] for every head h.   w: {cols, rows, n_heads}; x: {cols, n_heads, n}; y: {rows, n_heads, n}
  virtual void matmul_heads(const Tensor& w, const Tensor& x, const Tensor& y) = 0;
  // y[t][h] = W[h]^T x[t][h]: y[t][h][c] = sum over r of w[h][r][c] x[t][h][r], for a weight stored with the
  // summed dimension as rows (MLA's key up-projection in attn_kv_b).
  //   w: {cols, rows, n_heads}; x: {rows, n_heads, n}; y: {cols, n_heads, n}
  virtual void matmul_heads_transposed(const Tensor& w, const Tensor& x, const Tensor& y) = 0;
  // out = a + b (same shapes; out may alias a or b)
  virtual void add(const Tensor& a, const Tensor& b, const Tensor& out) = 0;
  // out = silu(gate) * up (same shapes; out may alias gate)
  virtual void swiglu(const Tensor& gate, const Tensor& up, const Tensor& out) = 0;
  // dst = src (same shapes, any strides)
  virtual void copy(const Tensor& src, const Tensor& dst) = 0;
  // out[i] = x[rows[i]].   x: {d, n}; rows: I32 [m]; out: {d, m}
  virtual void gather_rows(const Tensor& x, const Tensor& rows, const Tensor& out) = 0;
  // Rotates the first spec.n_dims values of every head of token t by position positions[t], in place.
  //   x: {>= n_dims, n_heads, n} (or {>= n_dims, n} for one head); positions: I32 [n]
  virtual void rope(const Tensor& x, const Tensor& positions, const RopeSpec& spec) = 0;
  // Writes row t of src into columns [col_offset, col_offset + src.cols) of token t's slot in cache.
  //   src: {w, n}; cache: {slot_width, n_slots}
  virtual void store_kv(const Tensor& src, const Tensor& cache, int64_t col_offset, const PagedBatch& batch) = 0;
  // Causal attention of each token over positions [0, positions[t]] of its sequence in cache (this step's
  // keys must already be stored): out[t][h] = sum_p softmax_p(scale * q[t][h] . K[p]) V[p].
  //   q: {>= key_dim, n_heads, n}; out: {value_dim, n_heads, n}
  virtual void attention(const Tensor& q, const Tensor& cache, const KvLayout& layout, const PagedBatch& batch,
                         float scale, const Tensor& out) = 0;
  // Top-k routing of every token (route_token in routing.h).
  //   logits: {n_experts, n}; bias: F32 [n_experts] or invalid; ids: I32 {k, n}; weights: F32 {k, n}
  virtual void route(const Tensor& logits, const Tensor& bias, const RouterConfig& config, const Tensor& ids,
                     const Tensor& weights) = 0;
  // out[t] = sum_j weights[t][j] * expert_{ids[t][j]}(x[t]), slots summed in j order, for experts whose
  // weights are on this device.   x, out: {n_embd, n}; ids: I32 {k, n}; weights: F32 {k, n}
  virtual void moe(const ExpertWeights& experts, const Tensor& x, const Tensor& ids, const Tensor& weights,
                   const Tensor& out) = 0;

  // Waits for all queued work; returns the first error since the last sync (and clears it).
  virtual Status sync() = 0;
  // Seconds the device has spent on queued work since creation: from the first operation queued after a
  // wait (sync(), download()) to the end of the last one before the next wait, summed (idle gaps inside such
  // a span, e.g. launches or a copy it waits for, included). 0 for a backend that computes each operation on
  // the calling thread (its busy time is the caller's).
  virtual double busy_seconds() const { return 0.0; }
  // The caller is about to wait for something other than this backend (the expert runner) before it queues
  // more work: the busy span ends with the work queued so far, so the device's idle time meanwhile is not
  // counted. Waits for nothing.
  virtual void end_busy_span() {}

  // --- streamed experts (layerwise prefill) ---
  // A large batch can run routed experts that live in host memory (the ExpertRunner's) on this device: their
  // weights are copied in for the layer, into one of two staging slots, while other work runs. Worth it when
  // the copy takes less time than the CPU would.
  // Set-up: makes `layers` (host expert stacks that outlive the backend) streamable: sizes the two slots for
  // the largest and pins the host memory where it can. The default cannot stream.
  virtual Status prepare_expert_streaming(const std::vector<ExpertWeights>& layers) {
    return Status::error(describe() + " cannot stream experts");
  }
  // Starts copying `host` (one of the prepared layers) into slot 0 or 1, once the operations queued so far
  // are done with that slot; returns at once.
  virtual void stage_experts(const ExpertWeights& host, int slot) {}
  // The slot's copy of `host` (staged earlier) as tensors on this device; operations queued from now on wait
  // for the copy.
  virtual ExpertWeights staged_experts(const ExpertWeights& host, int slot) { return host; }

  // --- recorded runs (CUDA graphs) ---
  // Marks the operations queued between begin_graph(key) and end_graph() as a run that later steps repeat
  // identically: the same operations on the same tensors with the same shapes (only the values in device
  // memory differ, e.g. a decode step's layers at one batch size). A backend that can record work records
  // the run the first time it sees key and afterwards replays the recording at end_graph() instead of
  // launching each operation; while replaying it checks that every operation's arguments equal the recorded
  // ones and fails the run (recorded error, nothing launched) when they do not. No transfers inside a run.
  // Returns whether the backend records runs; the default records nothing and runs every operation.
  virtual bool begin_graph(uint64_t key) { return false; }
  virtual void end_graph() {}
};

}  // namespace tandem
