#include "app/placement_options.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace tandem::app {

namespace {

const std::vector<Device> kCpuOnly{Device::cpu()};

std::string write_file(const std::string& name, const std::string& text) {
  const auto path = std::filesystem::temp_directory_path() / (name + "-" + std::to_string(::getpid()) + ".yaml");
  std::ofstream(path) << text;
  return path.string();
}

Device device_of(const Placement& p, const std::string& name) {
  const PlacementRule* r = p.rule_for(name);
  return r ? r->device : Device::cuda(99);  // a sentinel for "no rule"
}

}  // namespace

TEST(PlacementOptions, ParsesDevicesInEverySpelling) {
  EXPECT_EQ(parse_device("cpu").value(), Device::cpu());
  EXPECT_EQ(parse_device("CPU").value(), Device::cpu());
  EXPECT_EQ(parse_device("cuda").value(), Device::cuda(0));
  EXPECT_EQ(parse_device("cuda:1").value(), Device::cuda(1));
  EXPECT_EQ(parse_device("CUDA0").value(), Device::cuda(0));
  EXPECT_FALSE(parse_device("gpu"));
  EXPECT_FALSE(parse_device("cuda:x"));
}

TEST(PlacementOptions, OverridesComeFirstThenShorthandsThenTheFile) {
  const std::string file = write_file("rules", R"(
- match:
    name: "\\.ffn_down_exps\\."
  device: cpu
- match:
    name: "^blk\\.1\\."
  device: cpu
)");
  PlacementOptions o;
  o.rules_file = file;
  o.overrides = {"attn_q\\.=CPU,token_embd=cpu"};
  o.n_cpu_moe = 2;
  auto p = build_placement(o, kCpuOnly, "");
  ASSERT_TRUE(p) << p.status().message();
  // 2 -ot rules, 2 --n-cpu-moe rules, 2 file rules.
  ASSERT_EQ(p->rules().size(), 6u);
  EXPECT_EQ(p->rule_for("blk.5.attn_q.weight")->source, "-ot attn_q\\.=CPU");
  EXPECT_EQ(p->rule_for("token_embd.weight")->source, "-ot token_embd=cpu");
  EXPECT_EQ(p->rule_for("blk.1.ffn_up_exps.weight")->source, "--n-cpu-moe 2");
  EXPECT_EQ(p->rule_for("blk.2.ffn_up_exps.weight"), nullptr);
  EXPECT_NE(p->rule_for("blk.7.ffn_down_exps.weight")->source.find("rule 1"), std::string::npos);
  EXPECT_NE(p->rule_for("blk.1.attn_norm.weight")->source.find("rule 2"), std::string::npos);
  EXPECT_EQ(device_of(p.value(), "blk.7.ffn_down_exps.weight"), Device::cpu());
  std::filesystem::remove(file);
}

TEST(PlacementOptions, CpuMoeMatchesEveryExpertStackOnly) {
  PlacementOptions o;
  o.cpu_moe = true;
  auto p = build_placement(o, kCpuOnly, "");
  ASSERT_TRUE(p);
  for (const char* name : {"blk.3.ffn_up_exps.weight", "blk.60.ffn_gate_exps.weight", "blk.9.ffn_down_exps.weight"}) {
    EXPECT_EQ(device_of(p.value(), name), Device::cpu()) << name;
  }
  EXPECT_EQ(p->rule_for("blk.3.ffn_up_shexp.weight"), nullptr);
  EXPECT_EQ(p->rule_for("blk.3.ffn_gate_inp.weight"), nullptr);
}

TEST(PlacementOptions, ADeviceThisBuildLacksStopsWithTheReason) {
  PlacementOptions o;
  o.overrides = {"exps=CUDA0"};
  auto p = build_placement(o, kCpuOnly, "this build has no CUDA backend");
  ASSERT_FALSE(p);
  EXPECT_NE(p.status().message().find("-ot exps=CUDA0"), std::string::npos) << p.status().message();
  EXPECT_NE(p.status().message().find("no CUDA backend"), std::string::npos);
  // With the device present it is accepted.
  EXPECT_TRUE(build_placement(o, {Device::cpu(), Device::cuda(0)}, ""));
}

TEST(PlacementOptions, MalformedInputGetsAClearMessage) {
  auto message = [](const PlacementOptions& o) {
    auto p = build_placement(o, kCpuOnly, "");
    EXPECT_FALSE(p);
    return p ? std::string() : p.status().message();
  };
  PlacementOptions o;
  o.overrides = {"exps"};
  EXPECT_NE(message(o).find("REGEX=DEVICE"), std::string::npos);
  o.overrides = {"(=cpu"};
  EXPECT_NE(message(o).find("invalid regular expression"), std::string::npos);
  o.overrides = {"exps=tpu"};
  EXPECT_NE(message(o).find("unknown device"), std::string::npos);
  o.overrides.clear();
  o.rules_file = "/nonexistent/rules.yaml";
  EXPECT_NE(message(o).find("cannot open"), std::string::npos);
  const std::string kt = write_file("kt", R"(
- match:
    name: "^model\\.layers\\..*\\.mlp\\.experts$"
  replace:
    class: ktransformers.operators.experts.KTransformersExperts
)");
  o.rules_file = kt;
  EXPECT_NE(message(o).find("KTransformers"), std::string::npos);
  const std::string bad = write_file("bad", "- match: {name: exps}\n  device: cpu\n  priority: 3\n");
  o.rules_file = bad;
  EXPECT_NE(message(o).find("unknown key 'priority'"), std::string::npos);
  const std::string not_list = write_file("map", "rules: 3\n");
  o.rules_file = not_list;
  EXPECT_NE(message(o).find("list of rules"), std::string::npos);
  for (const auto& f : {kt, bad, not_list}) std::filesystem::remove(f);
}

}  // namespace tandem::app
