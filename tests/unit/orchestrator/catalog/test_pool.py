"""A catalog's pool of model actors and decode tasks (``catalog/pipeline.py``), planned from the
cluster's resources."""

from __future__ import annotations

import pytest
from stylegrid.orchestrator.catalog.pipeline import (
    CatalogError,
    actor_nodes,
    block_layout,
    plan_pool,
)  # fmt: skip


@pytest.mark.parametrize(
    "resources",
    [{"CPU": 1.0}, {"CPU": 2.0}, {"CPU": 3.0}, {"CPU": 4.0}, {"CPU": 16.0}, {"CPU": 96.0}],
)
def test_cpu_pools_always_leave_a_cpu_for_the_decode_tasks(resources):
    plan = plan_pool(resources, None, None, None)
    cpus = resources["CPU"]
    assert plan.gpus_per_actor == 0 and plan.batch_size == 1
    assert plan.actors * plan.cpus_per_actor + min(1.0, cpus / 2) <= cpus + 1e-9
    assert plan.actors * plan.threads_per_actor <= max(1, cpus)  # torch threads do not oversubscribe
    assert plan.actors >= 1 and plan.threads_per_actor >= 1


def test_the_two_cpu_default_runs_both_cores_in_two_actors():
    # one actor of 2 torch threads is slower than two of one (benchmarks/catalog_throughput.py)
    plan = plan_pool({"CPU": 2.0}, None, None, None)
    assert (plan.actors, plan.threads_per_actor) == (2, 1)
    assert plan.actors * plan.cpus_per_actor == 1.0


def test_across_nodes_the_decode_tasks_fit_beside_the_actors():
    # two worker nodes of 2 CPUs: an actor of 1.5 CPU on each would leave no node a whole CPU
    plan = plan_pool({"CPU": 4.0}, None, None, None, [2.0, 2.0])
    assert (plan.actors, plan.cpus_per_actor, plan.decode_cpus) == (2, 1.5, 0.5)
    assert plan_pool({"CPU": 2.0}, None, None, None, [2.0]).decode_cpus == 1.0
    assert plan_pool({"CPU": 1.0}, None, None, None).decode_cpus == 0.5  # beside an actor of 0.5
    uneven = plan_pool({"CPU": 10.0}, None, None, None, [8.0, 2.0])
    left = [8.0 - 3 * uneven.cpus_per_actor, 2.0 - 2 * uneven.cpus_per_actor]  # 5 actors: 3 and 2
    assert uneven.actors == 5 and uneven.decode_cpus == round(min(1.0, max(left)), 4) > 0


def test_actors_go_only_to_alive_nodes_with_the_wanted_resources():
    nodes = [
        {"Alive": True, "Resources": {"memory": 1.0}},  # a head started with --num-cpus=0
        {"Alive": True, "Resources": {"CPU": 2.0, "stylegrid_worker": 1.0}},
        {"Alive": False, "Resources": {"CPU": 2.0, "stylegrid_worker": 1.0}},
        {"Alive": True, "Resources": {"CPU": 4.0}},
    ]
    assert [n["CPU"] for n in actor_nodes(nodes, {})] == [2.0, 4.0]
    assert [n["CPU"] for n in actor_nodes(nodes, {"stylegrid_worker": 1})] == [2.0]
    assert actor_nodes(nodes, {"stylegrid_worker": 2}) == []


def test_gpu_pools_take_one_actor_per_gpu():
    plan = plan_pool({"CPU": 16.0, "GPU": 4.0}, None, None, None)
    assert (plan.actors, plan.gpus_per_actor, plan.batch_size) == (4, 1.0, 8)
    assert plan.actors * plan.cpus_per_actor <= 15
    assert plan_pool({"CPU": 16.0, "GPU": 4.0}, 2, None, 16).actors == 2
    shared = plan_pool({"CPU": 4.0, "GPU": 1.0}, 1, 2, None)
    assert (shared.actors, shared.gpus_per_actor) == (2, 0.5)


def test_pools_that_cannot_fit_are_refused():
    with pytest.raises(CatalogError, match="--num-gpus 2: the cluster has 0 GPU"):
        plan_pool({"CPU": 8.0}, 2, None, None)
    with pytest.raises(CatalogError, match="--actors 9: 8 CPUs cannot give each actor a core"):
        plan_pool({"CPU": 8.0}, None, 9, None)
    assert plan_pool({"CPU": 8.0}, None, 8, None).actors == 8


def test_small_catalogs_are_cut_so_that_every_actor_gets_work():
    two = plan_pool({"CPU": 2.0}, None, None, None)
    assert block_layout(1, two) == (1, 1)
    assert block_layout(7, two) == (1, 7)
    assert block_layout(40, two) == (5, 8)
    assert block_layout(1000, two) == (8, 125)
    assert block_layout(1_000_000, two) == (100, 10_000)
    gpus = plan_pool({"CPU": 16.0, "GPU": 2.0}, None, None, None)
    assert block_layout(10_000, gpus) == (8, 1250)
