#pragma once
// Every protocol medmon dissects, in the order probes run when no port hint prefers one.
#include <span>

#include "dissectors/api/dissector.h"

namespace medmon {
std::span<const DissectorInfo* const> all_dissectors();
}
