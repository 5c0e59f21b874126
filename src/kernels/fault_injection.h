// Fault injection: Backend and ExpertRunner wrappers that make chosen operations fail, to prove that a
// failing step fails only its own requests and the server keeps serving.
//
// A FaultPlan names an operation ("matmul", "attention", ..., "experts" for the runner, "any" for every
// operation) and which call of it fails: the n-th (1-based) counted from construction, and then every
// `period`-th after it when period > 0. A failed call records an error returned by the next sync() (or
// wait()), exactly as a real kernel failure would; all other calls go to the wrapped object.
#pragma once

#include <memory>
#include <string>

#include "core/status.h"
#include "kernels/backend.h"
#include "kernels/expert_runner.h"

namespace tandem {

struct FaultPlan {
  std::string op;      // operation name, "experts", or "any"
  int64_t nth = 0;     // 1-based index of the first failing call
  int64_t period = 0;  // > 0: every period-th call after that fails too
};

// Parses "OP:N" or "OP:N:PERIOD" (the TANDEM_INJECT_FAULT environment variable's format).
Result<FaultPlan> parse_fault_plan(const std::string& text);

std::unique_ptr<Backend> inject_faults(std::unique_ptr<Backend> inner, const FaultPlan& plan);
std::unique_ptr<ExpertRunner> inject_faults(std::unique_ptr<ExpertRunner> inner, const FaultPlan& plan);

}  // namespace tandem
