#pragma once
// Every protocol medmon dissects, in the order probes run when no port hint prefers one.
#include <span>
#include <vector>

#include "dissectors/api/dissector.h"

namespace medmon {
std::span<const DissectorInfo* const> all_dissectors();
// The entries probes choose from: those of all_dissectors(), after one per loaded signature that
// names ports (probed only there, before the built-in dissectors; their ports also name the
// server of a flow picked up mid-connection). Taken once the signatures are loaded.
std::vector<const DissectorInfo*> probe_candidates();
}
