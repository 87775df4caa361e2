/** The parts of the engine's stats answer (`GET /containers/{id}/stats?stream=false`) that usage needs. */
export interface DockerStats {
  cpu_stats?: { cpu_usage?: { total_usage?: number; percpu_usage?: number[] }; system_cpu_usage?: number; online_cpus?: number };
  precpu_stats?: { cpu_usage?: { total_usage?: number }; system_cpu_usage?: number };
  memory_stats?: { usage?: number; stats?: Record<string, number> };
}

/** CPU % and memory as `docker stats` computes them (CPU: container delta over system delta, times online CPUs). */
export function computeStats(s: DockerStats): { cpuPercent: number; memoryMiB: number } {
  const cpuDelta = (s.cpu_stats?.cpu_usage?.total_usage ?? 0) - (s.precpu_stats?.cpu_usage?.total_usage ?? 0);
  const sysDelta = (s.cpu_stats?.system_cpu_usage ?? 0) - (s.precpu_stats?.system_cpu_usage ?? 0);
  const cpus = s.cpu_stats?.online_cpus || s.cpu_stats?.cpu_usage?.percpu_usage?.length || 1;
  const cpuPercent = cpuDelta > 0 && sysDelta > 0 ? (cpuDelta / sysDelta) * cpus * 100 : 0;
  const st = s.memory_stats?.stats ?? {};
  // docker CLI: usage minus page cache (cgroup v1 total_inactive_file, v2 inactive_file).
  const cache = st.total_inactive_file ?? st.inactive_file ?? st.cache ?? 0;
  const used = Math.max(0, (s.memory_stats?.usage ?? 0) - cache);
  return { cpuPercent: Math.round(cpuPercent * 10) / 10, memoryMiB: Math.round((used / (1024 * 1024)) * 10) / 10 };
}
