#include "model/model.h"

#include <algorithm>

#include <fmt/format.h>

#include "model/layers.h"
#include "model/rope.h"
#include "model/step_buffers.h"

namespace tandem {

struct Model::Impl {
  struct Layer {
    Tensor attn_norm, ffn_norm;  // F32 [n_embd]
    std::unique_ptr<Attention> attention;
    std::unique_ptr<FeedForward> feed_forward;
  };

  std::shared_ptr<const GgufModel> gguf;
  ModelConfig config;
  ModelDevices devices;
  std::unique_ptr<WeightLoader> weights;  // keeps the names of tensors made at load, and the placement log
  RopeSpec rope;
  Tensor token_embd, output, output_norm;
  std::vector<Layer> layers;
  bool any_runner_layer = false;
  std::unique_ptr<ExpertStream> expert_stream;  // when devices.stream_experts and the backend can
  uint64_t step_buffers_made = 0;
};

Model::Model() : impl_(std::make_unique<Impl>()) {}
Model::~Model() = default;

Result<std::unique_ptr<Model>> Model::load(std::shared_ptr<const GgufModel> gguf, const ModelConfig& config,
                                           const Placement& placement, const ModelDevices& devices) {
  if (!devices.main) return Status::error("Model::load: no main backend");
  std::unique_ptr<Model> model(new Model());
  Impl& m = *model->impl_;
  m.gguf = std::move(gguf);
  m.config = config;
  m.devices = devices;
  try {
    const ModelConfig& c = m.config;
    m.weights = std::make_unique<WeightLoader>(*m.gguf, placement, devices);
    WeightLoader& w = *m.weights;
    m.token_embd = w.matrix(TensorKind::TokenEmbd, -1, {c.n_embd, c.n_vocab});
    // Tied embeddings: files without output.weight reuse the embedding matrix.
    m.output = w.has(TensorKind::Output) ? w.matrix(TensorKind::Output, -1, {c.n_embd, c.n_vocab}) : m.token_embd;
    m.output_norm = w.vector(TensorKind::OutputNorm, -1, c.n_embd);
    const RopeTable rope(c.rope);
    m.rope.inv_freq = w.upload(rope.inv_freq(), {static_cast<int64_t>(rope.inv_freq().size()), 1, 1}, "rope.inv_freq");
    m.rope.n_dims = c.rope.n_dims;
    m.rope.adjacent_pairs = c.rope.adjacent_pairs;
    m.rope.attention_factor = static_cast<float>(c.rope.attention_factor);
    for (int l = 0; l < c.n_layers; ++l) {
      Impl::Layer layer;
      layer.attn_norm = w.vector(TensorKind::AttnNorm, l, c.n_embd);
      layer.ffn_norm = w.vector(TensorKind::FfnNorm, l, c.n_embd);
      layer.attention = c.arch == Arch::Deepseek2 ? make_mla_attention(c, w, l) : make_gqa_attention(c, w, l);
      layer.feed_forward = make_feed_forward(c, w, l);
      m.layers.push_back(std::move(layer));
    }
    for (const PlacedTensor& t : w.placement_log()) m.any_runner_layer |= t.on_expert_runner;
    if (devices.stream_experts && devices.cpu_experts && !devices.main->device().is_cpu()) {
      std::vector<ExpertWeights> streamable;
      for (const Impl::Layer& layer : m.layers) {
        if (const ExpertWeights* e = layer.feed_forward->runner_experts()) streamable.push_back(*e);
      }
      if (!streamable.empty()) {
        if (Status s = devices.main->prepare_expert_streaming(streamable); !s) {
          throw ModelLoadError("streaming experts to the GPU for long prompts: " + s.message() +
                               " (--stream-experts-min-prompt 0 turns it off)");
        }
        m.expert_stream = std::make_unique<ExpertStream>(*devices.main, std::move(streamable));
      }
    }
  } catch (const ModelLoadError& e) {
    return Status::error(fmt::format("{}: {}", m.gguf->files().front(), e.what()));
  } catch (const std::exception& e) {  // out of memory, a regular expression too complex to match, ...
    return Status::error(fmt::format("{}: loading failed: {}", m.gguf->files().front(), e.what()));
  }
  return model;
}

const ModelConfig& Model::config() const { return impl_->config; }
const ModelDevices& Model::devices() const { return impl_->devices; }
bool Model::streams_experts() const { return impl_->expert_stream != nullptr; }
const std::vector<PlacedTensor>& Model::placement_log() const { return impl_->weights->placement_log(); }

KvCacheConfig Model::kv_cache_config(int page_size, int n_pages) const {
  return {.n_layers = impl_->config.n_layers,
          .slot_width = kv_slot_width(impl_->config),
          .page_size = page_size,
          .n_pages = n_pages};
}

void StepBuffersDeleter::operator()(StepBuffers* buffers) const { delete buffers; }

Result<StepBuffersPtr> Model::create_step_buffers(const StepLimits& requested, const KvCacheConfig& cache) {
  const ModelConfig& c = impl_->config;
  if (requested.max_tokens <= 0 || requested.max_sequences <= 0 || requested.max_context <= 0 || cache.page_size <= 0 ||
      cache.n_pages <= 0) {
    return Status::error("step buffers: every limit must be positive");
  }
  StepLimits limits = requested;
  limits.max_experts_per_token = c.router.n_experts_used;
  StepBuffersPtr ws(new StepBuffers());
  ws->limits = limits;
  ws->id = ++impl_->step_buffers_made;
  const int64_t pages_per_sequence =
      std::min<int64_t>(cache.n_pages, (limits.max_context + cache.page_size - 1) / cache.page_size + 1);
  ws->page_table_capacity = limits.max_sequences * pages_per_sequence;
  ws->last_position.assign(static_cast<size_t>(limits.max_sequences), 0);

  Backend& b = *impl_->devices.main;
  Status failed;
  auto device = [&](GgmlType type, int64_t width, int64_t rows, const char* name) {
    if (width <= 0 || !failed.is_ok()) return Tensor{};
    if (type == GgmlType::F32 && rows == limits.max_tokens) limits.max_width = std::max(limits.max_width, width);
    auto t = b.alloc(type, {width, rows, 1}, name);
    if (!t) failed = t.status();
    return t ? t.value() : Tensor{};
  };
  auto host = [&](GgmlType type, int64_t width, int64_t rows, const char* name) {
    if (width <= 0 || !failed.is_ok()) return Tensor{};
    auto t = b.alloc_host(type, {width, rows, 1}, name);
    if (!t) failed = t.status();
    return t ? t.value() : Tensor{};
  };
  const int64_t T = limits.max_tokens, S = limits.max_sequences, E = c.n_embd, H = c.n_head;
  const int k = c.router.n_experts_used;
  ws->tokens = device(GgmlType::I32, T, 1, "tokens");
  ws->positions = device(GgmlType::I32, T, 1, "positions");
  ws->seq_of_token = device(GgmlType::I32, T, 1, "seq_of_token");
  ws->page_table_start = device(GgmlType::I32, S + 1, 1, "page_table_start");
  ws->page_table = device(GgmlType::I32, ws->page_table_capacity, 1, "page_table");
  ws->output_rows = device(GgmlType::I32, S, 1, "output_rows");
  ws->host_tokens = host(GgmlType::I32, T, 1, "tokens (host)");
  ws->host_positions = host(GgmlType::I32, T, 1, "positions (host)");
  ws->host_seq_of_token = host(GgmlType::I32, T, 1, "seq_of_token (host)");
  ws->host_page_table_start = host(GgmlType::I32, S + 1, 1, "page_table_start (host)");
  ws->host_page_table = host(GgmlType::I32, ws->page_table_capacity, 1, "page_table (host)");
  ws->host_output_rows = host(GgmlType::I32, S, 1, "output_rows (host)");

  ws->hidden = device(GgmlType::F32, E, T, "hidden");
  ws->normed = device(GgmlType::F32, E, T, "normed");
  ws->block_out = device(GgmlType::F32, E, T, "block_out");
  if (c.arch == Arch::Deepseek2) {
    const int64_t width = int64_t{c.kv_lora_rank} + c.qk_rope_dim;
    ws->q = device(GgmlType::F32, H * c.head_dim_k, T, "q");
    ws->q_lora = device(GgmlType::F32, c.q_lora_rank, T, "q_lora");
    ws->kv = device(GgmlType::F32, width, T, "kv");
    ws->q_latent = device(GgmlType::F32, H * width, T, "q_latent");
    ws->o_latent = device(GgmlType::F32, H * c.kv_lora_rank, T, "o_latent");
    ws->heads = device(GgmlType::F32, H * c.head_dim_v, T, "attention heads");
  } else {
    ws->q = device(GgmlType::F32, H * c.head_dim_k, T, "q");
    ws->k = device(GgmlType::F32, int64_t{c.n_head_kv} * c.head_dim_k, T, "k");
    ws->v = device(GgmlType::F32, int64_t{c.n_head_kv} * c.head_dim_v, T, "v");
    ws->heads = device(GgmlType::F32, H * c.head_dim_v, T, "attention heads");
  }
  const bool any_dense = c.n_leading_dense > 0;
  const int64_t max_ff = std::max<int64_t>(any_dense ? c.n_ff : 0, int64_t{c.n_ff_expert} * c.router.n_shared_experts);
  ws->ffn_gate = device(GgmlType::F32, max_ff, T, "ffn_gate");
  ws->ffn_up = device(GgmlType::F32, max_ff, T, "ffn_up");
  ws->router_logits = device(GgmlType::F32, c.router.n_experts, T, "router_logits");
  ws->expert_ids = device(GgmlType::I32, k, T, "expert_ids");
  ws->expert_weights = device(GgmlType::F32, k, T, "expert_weights");
  ws->shared_out = device(GgmlType::F32, E, T, "shared_out");
  ws->routed_out = device(GgmlType::F32, E, T, "routed_out");
  if (impl_->any_runner_layer) {
    ws->host_expert_x = host(GgmlType::F32, E, T, "expert x (host)");
    ws->host_expert_ids = host(GgmlType::I32, k, T, "expert ids (host)");
    ws->host_expert_weights = host(GgmlType::F32, k, T, "expert weights (host)");
    ws->host_expert_out = host(GgmlType::F32, E, T, "expert out (host)");
  }
  ws->final_rows = device(GgmlType::F32, E, S, "final_rows");
  ws->logits = device(GgmlType::F32, c.n_vocab, S, "logits");
  if (!failed) return Status::error("step buffers: " + failed.message());

  ws->limits = limits;  // with max_width, now known
  if (Status s = b.prepare(limits); !s) return s;
  if (impl_->any_runner_layer) {
    if (!impl_->devices.cpu_experts) return Status::error("step buffers: the model's experts need an ExpertRunner");
    const ExpertLimits expert_limits{.max_tokens = T, .n_embd = E, .max_ff = c.n_ff_expert, .k = k,
                                     .max_experts = c.router.n_experts};
    if (Status s = impl_->devices.cpu_experts->prepare(expert_limits); !s) return s;
  }
  return ws;
}

Status Model::stage_batch(const ForwardBatch& batch, const PagedKvCache& cache, StepBuffers& ws, PagedBatch& paged) {
  const ModelConfig& c = impl_->config;
  const int64_t n = batch.size();
  const auto n_seqs = static_cast<int64_t>(batch.page_tables.size());
  const auto n_out = static_cast<int64_t>(batch.output_tokens.size());
  if (n == 0) return Status::error("forward: the batch is empty");
  if (n > ws.limits.max_tokens || n_seqs > ws.limits.max_sequences || n_out > ws.limits.max_sequences) {
    return Status::error(fmt::format("forward: batch of {} tokens, {} sequences, {} outputs exceeds the step buffers "
                                     "({} tokens, {} sequences)", n, n_seqs, n_out, ws.limits.max_tokens,
                                     ws.limits.max_sequences));
  }
  if (static_cast<int64_t>(batch.positions.size()) != n || static_cast<int64_t>(batch.seq_index.size()) != n) {
    return Status::error("forward: tokens, positions and seq_index differ in length");
  }
  std::fill(ws.last_position.begin(), ws.last_position.begin() + n_seqs, -1);
  int32_t* tokens = ws.host_tokens.as<int32_t>();
  int32_t* positions = ws.host_positions.as<int32_t>();
  int32_t* seq_of = ws.host_seq_of_token.as<int32_t>();
  int64_t max_position = 0;
  for (int64_t t = 0; t < n; ++t) {
    const int32_t token = batch.tokens[static_cast<size_t>(t)], seq = batch.seq_index[static_cast<size_t>(t)];
    const int64_t pos = batch.positions[static_cast<size_t>(t)];
    if (token < 0 || token >= c.n_vocab) return Status::error(fmt::format("forward: token id {} is outside the vocabulary", token));
    if (seq < 0 || seq >= n_seqs) return Status::error(fmt::format("forward: token {} names sequence {} of {}", t, seq, n_seqs));
    if (pos < 0 || pos >= ws.limits.max_context) {
      return Status::error(fmt::format("forward: position {} outside [0, {})", pos, ws.limits.max_context));
    }
    tokens[t] = token;
    positions[t] = static_cast<int32_t>(pos);
    seq_of[t] = seq;
    int64_t& last = ws.last_position[static_cast<size_t>(seq)];
    last = std::max(last, pos);
    max_position = std::max(max_position, pos);
  }
  int32_t* start = ws.host_page_table_start.as<int32_t>();
  int32_t* table = ws.host_page_table.as<int32_t>();
  const int page_size = cache.config().page_size;
  start[0] = 0;
  for (int64_t s = 0; s < n_seqs; ++s) {
    const std::span<const int32_t> pages = batch.page_tables[static_cast<size_t>(s)];
    const int64_t n_positions = ws.last_position[static_cast<size_t>(s)] + 1;
    if (Status st = cache.check_page_table(pages, n_positions); !st) {
      return Status::error(fmt::format("forward: sequence {}: {}", s, st.message()));
    }
    const int64_t used = (n_positions + page_size - 1) / page_size;
    if (start[s] + used > ws.page_table_capacity) return Status::error("forward: page tables exceed the step buffers");
    std::copy(pages.begin(), pages.begin() + used, table + start[s]);
    start[s + 1] = static_cast<int32_t>(start[s] + used);
  }
  int32_t* outputs = ws.host_output_rows.as<int32_t>();
  for (int64_t i = 0; i < n_out; ++i) {
    const int32_t t = batch.output_tokens[static_cast<size_t>(i)];
    if (t < 0 || t >= n) return Status::error(fmt::format("forward: output token {} of a batch of {}", t, n));
    outputs[i] = t;
  }

  Backend& b = *impl_->devices.main;
  paged.positions = ws.positions.col_range(0, n);
  paged.seq_of_token = ws.seq_of_token.col_range(0, n);
  paged.page_table_start = ws.page_table_start.col_range(0, n_seqs + 1);
  paged.page_table = ws.page_table.col_range(0, std::max<int64_t>(start[n_seqs], 1));
  paged.page_size = page_size;
  paged.n_tokens = n;
  paged.n_sequences = n_seqs;
  paged.max_position = max_position;
  b.upload(tokens, ws.tokens.col_range(0, n));
  b.upload(positions, paged.positions);
  b.upload(seq_of, paged.seq_of_token);
  b.upload(start, paged.page_table_start);
  b.upload(table, paged.page_table);
  if (n_out > 0) b.upload(outputs, ws.output_rows.col_range(0, n_out));
  return Status::ok();
}

Status Model::forward(const ForwardBatch& batch, PagedKvCache& cache, StepBuffers& ws, std::span<float> logits,
                      ForwardStats* stats) {
  Impl& m = *impl_;
  const ModelConfig& c = m.config;
  Backend& b = *m.devices.main;
  ws.expert_wait_seconds = 0;
  const int64_t n = batch.size(), n_out = static_cast<int64_t>(batch.output_tokens.size());
  if (static_cast<int64_t>(logits.size()) < n_out * c.n_vocab) {
    return Status::error(fmt::format("forward: logits buffer of {} floats for {} outputs", logits.size(), n_out));
  }
  if (cache.config().n_layers != c.n_layers || cache.config().slot_width != kv_slot_width(c)) {
    return Status::error("forward: the KV cache was not made for this model");
  }
  PagedBatch paged;
  if (Status s = stage_batch(batch, cache, ws, paged); !s) return s;

  const auto eps = static_cast<float>(c.rms_eps);
  const Tensor hidden = ws.hidden.row_range(0, n);        // {n_embd, n}: the residual stream
  const Tensor normed = ws.normed.row_range(0, n);        // {n_embd, n}
  const Tensor block_out = ws.block_out.row_range(0, n);  // {n_embd, n}
  // A step of single-token sequences repeats its shapes: its runs of operations are recorded and replayed.
  // (Not with streamed experts: their layers queue other operations.)
  const bool streamed = m.expert_stream && batch.streamed_expert_tokens > 0;
  if (batch.streamed_expert_tokens > n) return Status::error("forward: more streamed-expert tokens than tokens");
  GraphRuns graphs(b, m.devices.use_graphs && static_cast<int64_t>(batch.page_tables.size()) == n && !streamed, n,
                   ws.id);
  graphs.open();
  LayerStep step{b, m.devices.cpu_experts, ws, paged, m.rope, n, m.devices.overlap_experts, graphs};
  if (streamed) {
    m.expert_stream->begin_step();
    step.stream = m.expert_stream.get();
    step.streamed_from = n - batch.streamed_expert_tokens;
  }
  b.embed(m.token_embd, ws.tokens.col_range(0, n), hidden);
  for (size_t l = 0; l < m.layers.size(); ++l) {
    const Impl::Layer& layer = m.layers[l];
    b.rms_norm(hidden, layer.attn_norm, eps, normed);
    layer.attention->forward(step, cache.layer(static_cast<int>(l)), normed, block_out);
    b.add(hidden, block_out, hidden);
    b.rms_norm(hidden, layer.ffn_norm, eps, normed);
    if (Status s = layer.feed_forward->forward(step, normed, block_out); !s) {
      graphs.close();
      b.sync();  // drain (and drop) the backend's queued work; the runner's error is the step's
      return s;
    }
    b.add(hidden, block_out, hidden);
  }
  graphs.close();
  if (n_out > 0) {
    const Tensor final_rows = ws.final_rows.row_range(0, n_out);  // {n_embd, n_out}
    const Tensor out_logits = ws.logits.row_range(0, n_out);      // {n_vocab, n_out}
    b.gather_rows(hidden, ws.output_rows.col_range(0, n_out), final_rows);
    b.rms_norm(final_rows, m.output_norm, eps, final_rows);
    b.matmul(m.output, 0, final_rows, out_logits);
    b.download(out_logits, logits.data());
  }
  Status s = b.sync();
  if (stats) stats->expert_wait_seconds = ws.expert_wait_seconds;
  return s;
}

}  // namespace tandem
