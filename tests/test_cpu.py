"""Threads from the CPUs the process may run on: affinity mask and container quota."""

import os

from promptclf._cpu import available_cpus


def test_quota_caps_the_affinity_mask(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # 1.5 CPUs -> 2 threads
    assert available_cpus(tmp_path) == min(2, len(os.sched_getaffinity(0)))
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    assert available_cpus(tmp_path) == 1


def test_no_quota_means_the_affinity_mask(tmp_path):
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert available_cpus(tmp_path) == len(os.sched_getaffinity(0))
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("100000")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert available_cpus(v1) == 1


def test_affinity_is_respected():
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {sorted(before)[0]})
        assert available_cpus() == 1
    finally:
        os.sched_setaffinity(0, before)


def test_omp_num_threads_caps_the_count(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert available_cpus(tmp_path) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "not a number")  # ignored
    assert available_cpus(tmp_path) == len(os.sched_getaffinity(0))


def _topology(sysfs, cores):
    """A fake /sys/devices/system/cpu: the process's CPUs, ``cores(i)`` the core of its i-th CPU."""
    for i, cpu in enumerate(sorted(os.sched_getaffinity(0))):
        t = sysfs / f"cpu{cpu}" / "topology"
        t.mkdir(parents=True)
        (t / "physical_package_id").write_text("0\n")
        (t / "core_id").write_text(f"{cores(i)}\n")


def test_hyperthreads_of_one_core_count_once(tmp_path):
    from promptclf._cpu import physical_cores

    cgroup, n = tmp_path / "cgroup", len(os.sched_getaffinity(0))
    cgroup.mkdir()
    _topology(tmp_path / "pairs", lambda i: i // 2)  # two hyperthreads per core
    assert physical_cores(cgroup, tmp_path / "pairs") == (n + 1) // 2
    _topology(tmp_path / "alone", lambda i: i)  # one thread per core
    assert physical_cores(cgroup, tmp_path / "alone") == n
    (cgroup / "cpu.max").write_text("100000 100000\n")  # the quota caps the cores too
    assert physical_cores(cgroup, tmp_path / "alone") == 1
    # no topology to read: every CPU counts
    assert physical_cores(tmp_path / "none", tmp_path / "none") == n
