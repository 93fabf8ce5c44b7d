#pragma once
// The policy subcommands of `medmon`: `mds2 import` and `policy check`, plus the loader the
// analyze/live commands use to plug the policy into the pipeline.
#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "policies/engine/policy_judge.h"

namespace medmon {

// Adds `mds2 import FORM -o MODEL.yaml [--ports ports.csv] [--id ID]` and
// `policy check SITE.yaml [--models DIR]`. Their callbacks set exit_code: 0 ok, 2 error (every
// error on stderr as file:line:column: message).
void register_policy_commands(CLI::App& app, int& exit_code);

// Loads a site policy (and its models, and an optional baseline of accepted alerts) for the
// pipeline. On error prints every error to stderr and returns nullptr (the caller exits 2).
std::unique_ptr<policy::PolicyJudge> load_policy_judge(const std::string& site_path, const std::string& models_dir = {},
                                                       const std::string& baseline_path = {});

}  // namespace medmon
