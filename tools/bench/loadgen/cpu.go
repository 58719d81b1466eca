package main

// cpu.go — CPU accounting of a run (Linux /proc; zeros elsewhere), so that a run disturbed by
// other work on a shared machine can be recognised: the machine's busy CPU (/proc/stat, tick
// sampled: under many short sleeps it reads up to ~20% of a core below the per-process sums),
// this process's CPU, the CPU of the server processes named by -server-pids, and the CPU of
// every other process alive at the end of the window (processes that exit inside the window
// are missed), over the measured window.

import (
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type cpuSample struct {
	at      time.Time
	busy    float64 // machine busy seconds (all CPUs)
	self    float64 // this process, seconds
	servers float64 // -server-pids, seconds
	others  map[int]float64
}

type cpuReport struct {
	NCPU       int     `json:"ncpu"`
	MachinePct float64 `json:"machine_pct"` // 100 = one core
	LoadgenPct float64 `json:"loadgen_pct"`
	ServerPct  float64 `json:"server_pct"`
	OtherPct   float64 `json:"other_pct"`
}

const clockTick = 100.0 // USER_HZ

func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line := strings.SplitN(string(b), "\n", 2)[0]
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0
	}
	var total, idle float64
	for i, s := range f[1:] {
		if i >= 8 { // guest times are already part of user/nice
			break
		}
		v, _ := strconv.ParseFloat(s, 64)
		total += v
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	return (total - idle) / clockTick
}

func procCPU(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:]) // f[0] = state (field 3); utime = field 14, stime = 15
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / clockTick
}

func selfCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

func sampleCPU(pids []int) cpuSample {
	s := cpuSample{at: time.Now(), busy: machineBusy(), self: selfCPU(), others: map[int]float64{}}
	skip := map[int]bool{os.Getpid(): true}
	for _, p := range pids {
		s.servers += procCPU(p)
		skip[p] = true
	}
	if ents, err := os.ReadDir("/proc"); err == nil {
		for _, e := range ents {
			if p, err := strconv.Atoi(e.Name()); err == nil && !skip[p] {
				s.others[p] = procCPU(p)
			}
		}
	}
	return s
}

func cpuBetween(a, b cpuSample) *cpuReport {
	el := b.at.Sub(a.at).Seconds()
	if el <= 0 {
		return nil
	}
	pct := func(v float64) float64 { return round(100*v/el, 1) }
	r := &cpuReport{NCPU: runtime.NumCPU(), MachinePct: pct(b.busy - a.busy),
		LoadgenPct: pct(b.self - a.self), ServerPct: pct(b.servers - a.servers)}
	var other float64
	for p, v := range b.others {
		other += v - a.others[p] // a process born inside the window counts from 0
	}
	// Processes that exited inside the window (compilers, test binaries) are missed by the
	// scan but not by the machine total: take the larger of the two estimates.
	r.OtherPct = math.Max(pct(other), round(r.MachinePct-r.LoadgenPct-r.ServerPct, 1))
	return r
}

func parsePids(s string) []int {
	var out []int
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		if p, err := strconv.Atoi(f); err == nil && p > 0 {
			out = append(out, p)
		}
	}
	return out
}
