package procs

// MachineCPU is the whole machine's CPU time since it started, in the
// kernel's clock ticks, summed over its CPUs. A benchmark samples it at
// both ends of its measured window (MachineUse) to say how busy the
// machine was and how much time the hypervisor took: on a virtual machine,
// time "stolen" is time this machine's CPUs had work and a host ran
// something else, which no change to the node can win back and which
// shows first in a latency's tail.
type MachineCPU struct {
	Busy  int64 // running anything: user, nice, system, interrupts
	Idle  int64 // idle, or waiting for I/O with nothing to run
	Steal int64 // taken by the hypervisor while there was work
}

// ReadMachineCPU samples the machine's CPU time; ok is false where the
// system does not say (anything but Linux, or /proc unreadable).
func ReadMachineCPU() (c MachineCPU, ok bool) { return readMachineCPU() }

// MachineUse is how a window's CPU time was spent, each a share (0-1) of
// all the machine's CPU time in it.
type MachineUse struct {
	Busy, Idle, Steal float64
}

// Since is the use of the machine's CPU time between an earlier sample
// and c; zero when no time passed.
func (c MachineCPU) Since(earlier MachineCPU) MachineUse {
	busy, idle, steal := c.Busy-earlier.Busy, c.Idle-earlier.Idle, c.Steal-earlier.Steal
	total := busy + idle + steal
	if total <= 0 {
		return MachineUse{}
	}
	t := float64(total)
	return MachineUse{Busy: float64(busy) / t, Idle: float64(idle) / t, Steal: float64(steal) / t}
}
