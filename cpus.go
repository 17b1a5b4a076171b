package imaged

import "runtime"

// CPUs is the number of CPUs this process may use, from which every CPU-derived default
// (workers, pipeline slots, the decode memory budget) is computed: runtime.GOMAXPROCS(0), which
// the Go runtime sets from the container's CPU quota (cgroup limit) where there is one and
// from the machine's cores otherwise, never below one. runtime.NumCPU counts the host's cores,
// so a pod limited to 2 CPUs on a 64-core node would run 64 tasks at once.
func CPUs() int {
	return max(1, runtime.GOMAXPROCS(0))
}
