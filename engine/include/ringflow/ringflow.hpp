#pragma once
// Everything of ringflow's public API.

#include "ringflow/clock.hpp"
#include "ringflow/config.hpp"
#include "ringflow/engine.hpp"
#include "ringflow/event.hpp"
#include "ringflow/key_hash.hpp"
#include "ringflow/outcome.hpp"
#include "ringflow/partition_log.hpp"
#include "ringflow/pipeline.hpp"
#include "ringflow/plan.hpp"
#include "ringflow/producer.hpp"
#include "ringflow/spsc_ring.hpp"
#include "ringflow/status.hpp"
#include "ringflow/topic.hpp"
#include "ringflow/topology.hpp"
#include "ringflow/version.hpp"
#include "ringflow/wait_strategy.hpp"
