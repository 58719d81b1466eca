// Command loadgen is pegasus-py's YCSB-like load generator for a Pegasus cluster.
//
// Records are hash key "user<N>" (N in [0, -records)), sort key -sortkey (default empty),
// value -value bytes of random data. Workloads: readonly (100% get), writeonly (100% set),
// rw11 (50% get / 50% set), rw30to1 (30 gets per set). Key choice: uniform, or zipfian
// (YCSB's scrambled zipfian, theta 0.99).
//
// Closed loop (-target-qps 0): -threads goroutines issue operations back to back.
// Open loop (-target-qps Q): operation i is scheduled at start + i/Q; a free worker (of
// -threads) takes it, waits for its time and issues it. When no worker was free at the
// scheduled time, latency is measured from the scheduled time, so it includes the queueing
// when the server falls behind (no coordinated omission); otherwise from the actual start
// (timer overshoot is not the server's). "late_starts" counts operations started >1 ms late.
//
// -load writes the records before the run, -unload removes them after it (-duration 0: no
// run). The first -warmup of the run is excluded from the statistics. The result is ONE JSON
// line on stdout (ops_per_sec, p50/p90/p99/p999/max/mean_ms over every operation including
// failed ones, errors, counts per operation type, load/unload summaries, CPU split: see
// cpu.go); diagnostics go to stderr. Latencies are kept in a plain slice and sorted.
//
// Clients: -client wire (default, wire.go: built-in, standard library only) or -client
// official (official.go, the Apache go-client; needs -tags official, see ../run_bench.sh).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

type workload struct {
	name      string
	readRatio float64
}

var workloads = map[string]workload{
	"readonly":  {"readonly", 1.0},
	"writeonly": {"writeonly", 0.0},
	"rw11":      {"rw11", 0.5},
	"rw30to1":   {"rw30to1", 30.0 / 31.0},
}

// ---------------------------------------------------------------------------------------
// key choosers

// zipfian: YCSB ZipfianGenerator (Gray et al., "Quickly generating billion-record synthetic
// databases"), ranks in [0, n).
type zipfian struct {
	n                        uint64
	theta, alpha, zetan, eta float64
	halfPowTheta             float64
}

func newZipfian(n uint64, theta float64) *zipfian {
	zeta := func(k uint64) float64 {
		s := 0.0
		for i := uint64(1); i <= k; i++ {
			s += 1 / math.Pow(float64(i), theta)
		}
		return s
	}
	zetan := zeta(n)
	zeta2 := zeta(2)
	return &zipfian{
		n: n, theta: theta, alpha: 1 / (1 - theta), zetan: zetan,
		eta:          (1 - math.Pow(2/float64(n), 1-theta)) / (1 - zeta2/zetan),
		halfPowTheta: 1 + math.Pow(0.5, theta),
	}
}

func (z *zipfian) next(r *rand.Rand) uint64 {
	u := r.Float64()
	uz := u * z.zetan
	if uz < 1 {
		return 0
	}
	if uz < z.halfPowTheta {
		return 1
	}
	v := uint64(float64(z.n) * math.Pow(z.eta*u-z.eta+1, z.alpha))
	if v >= z.n {
		v = z.n - 1
	}
	return v
}

// fnv64 as YCSB's Utils.fnvhash64 (FNV-1a over the 8 bytes of the value, low byte first).
func fnv64(v uint64) uint64 {
	h := uint64(0xCBF29CE484222325)
	for i := 0; i < 8; i++ {
		h ^= v & 0xff
		h *= 1099511628211
		v >>= 8
	}
	return h
}

type keyChooser func(r *rand.Rand) uint64

func makeChooser(dist string, records uint64) (keyChooser, error) {
	switch dist {
	case "uniform":
		return func(r *rand.Rand) uint64 { return uint64(r.Int63n(int64(records))) }, nil
	case "zipfian":
		z := newZipfian(records, 0.99)
		// scrambled: popular ranks are spread over the key space
		return func(r *rand.Rand) uint64 { return fnv64(z.next(r)) % records }, nil
	}
	return nil, fmt.Errorf("unknown -dist %q (uniform, zipfian)", dist)
}

func hashKey(buf []byte, k uint64) []byte {
	return strconv.AppendUint(append(buf[:0], "user"...), k, 10)
}

// ---------------------------------------------------------------------------------------
// statistics

type threadStats struct {
	lat        []int64 // nanoseconds
	gets, sets int64
	notFound   int64
	errors     int64
	errSamples []string
}

func (s *threadStats) fail(err error) {
	s.errors++
	if len(s.errSamples) < 3 {
		s.errSamples = append(s.errSamples, err.Error())
	}
}

type summary struct {
	Ops       int64   `json:"ops"`
	OpsPerSec float64 `json:"ops_per_sec"`
	P50       float64 `json:"p50_ms"`
	P90       float64 `json:"p90_ms"`
	P99       float64 `json:"p99_ms"`
	P999      float64 `json:"p999_ms"`
	Max       float64 `json:"max_ms"`
	Mean      float64 `json:"mean_ms"`
}

func summarize(lat []int64, window time.Duration) summary {
	s := summary{Ops: int64(len(lat))}
	if window > 0 {
		s.OpsPerSec = round(float64(len(lat))/window.Seconds(), 1)
	}
	if len(lat) == 0 {
		return s
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(lat)))) - 1
		if i < 0 {
			i = 0
		}
		return round(float64(lat[i])/1e6, 3)
	}
	var sum float64
	for _, v := range lat {
		sum += float64(v)
	}
	s.P50, s.P90, s.P99, s.P999 = pct(0.50), pct(0.90), pct(0.99), pct(0.999)
	s.Max = round(float64(lat[len(lat)-1])/1e6, 3)
	s.Mean = round(sum/float64(len(lat))/1e6, 3)
	return s
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// ---------------------------------------------------------------------------------------
// phases

type loadResult struct {
	Records   uint64   `json:"records"`
	Seconds   float64  `json:"seconds"`
	OpsPerSec float64  `json:"ops_per_sec"`
	Errors    int64    `json:"errors"`
	Samples   []string `json:"error_samples,omitempty"`
	VerifyOK  bool     `json:"verify_ok"`
}

func randomValue(r *rand.Rand, n int) []byte {
	v := make([]byte, n)
	r.Read(v)
	return v
}

// runLoad writes (or, with unload, removes) records user0..user<records-1>.
func runLoad(c kvClient, records uint64, threads int, valueSize int, sortKey []byte, unload bool) loadResult {
	var next uint64
	var wg sync.WaitGroup
	stats := make([]threadStats, threads)
	start := time.Now()
	for t := 0; t < threads; t++ {
		wg.Add(1)
		go func(st *threadStats, seed int64) {
			defer wg.Done()
			r := rand.New(rand.NewSource(seed))
			val := randomValue(r, valueSize)
			var hk []byte
			for {
				k := atomic.AddUint64(&next, 1) - 1
				if k >= records {
					return
				}
				hk = hashKey(hk, k)
				val[0], val[len(val)-1] = byte(k), byte(k>>8)
				var err error
				if unload {
					err = c.Del(hk, sortKey)
				} else {
					err = c.Set(hk, sortKey, val)
				}
				if err != nil {
					st.fail(err)
				} else {
					st.sets++
				}
			}
		}(&stats[t], int64(t)+1)
	}
	wg.Wait()
	el := time.Since(start)
	res := loadResult{Records: records, Seconds: round(el.Seconds(), 3),
		OpsPerSec: round(float64(records)/el.Seconds(), 1)}
	for i := range stats {
		res.Errors += stats[i].errors
		res.Samples = append(res.Samples, stats[i].errSamples...)
	}
	if len(res.Samples) > 5 {
		res.Samples = res.Samples[:5]
	}
	v, ok, err := c.Get(hashKey(nil, 0), sortKey)
	res.VerifyOK = err == nil && ok && len(v) == valueSize
	if unload {
		res.VerifyOK = err == nil && !ok
	}
	if !res.VerifyOK {
		fmt.Fprintf(os.Stderr, "loadgen: verify get(user0) after load: found=%v len=%d err=%v\n", ok, len(v), err)
	}
	return res
}

type result struct {
	Client    string  `json:"client"`
	Meta      string  `json:"meta"`
	Table     string  `json:"table"`
	Workload  string  `json:"workload"`
	Dist      string  `json:"dist"`
	Records   uint64  `json:"records"`
	ValueSize int     `json:"value_size"`
	Threads   int     `json:"threads"`
	TargetQPS float64 `json:"target_qps"`
	DurationS float64 `json:"duration_s"`
	summary
	Errors  int64            `json:"errors"`
	Counts  map[string]int64 `json:"counts"`
	Samples []string         `json:"error_samples,omitempty"`
	Load    *loadResult      `json:"load,omitempty"`
	Unload  *loadResult      `json:"unload,omitempty"`
	CPU     *cpuReport       `json:"cpu,omitempty"`
	Behind  int64            `json:"late_starts,omitempty"`
}

func main() {
	meta := flag.String("meta", "127.0.0.1:34601", "meta server list, comma separated")
	table := flag.String("table", "temp", "table name")
	wl := flag.String("workload", "readonly", "readonly | writeonly | rw11 | rw30to1")
	dist := flag.String("dist", "uniform", "uniform | zipfian")
	records := flag.Uint64("records", 100000, "number of records (hash keys user0..userN-1)")
	valueSize := flag.Int("value", 1024, "value size in bytes")
	sortKey := flag.String("sortkey", "", "fixed sort key of every record")
	duration := flag.Duration("duration", 20*time.Second, "measured run time (after -warmup); 0 = no run")
	warmup := flag.Duration("warmup", time.Second, "run time before measuring starts")
	threads := flag.Int("threads", 64, "concurrent workers (closed loop) / worker pool (open loop)")
	targetQPS := flag.Float64("target-qps", 0, "open-loop target rate (ops/s); 0 = unthrottled closed loop")
	load := flag.Bool("load", false, "pre-load -records records before the run")
	unload := flag.Bool("unload", false, "remove the -records records after the run (leave the table as found)")
	clientKind := flag.String("client", "wire", "wire (built-in THFT client) | official (needs -tags official)")
	serverPids := flag.String("server-pids", "", "PIDs of the server processes, for the CPU report (comma separated)")
	opTimeout := flag.Duration("op-timeout", 4*time.Second, "per-operation timeout")
	flag.Parse()

	w, ok := workloads[*wl]
	if !ok {
		fatalf("unknown -workload %q", *wl)
	}
	if *records == 0 || *threads < 1 || *valueSize < 2 {
		fatalf("need -records > 0, -threads > 0, -value >= 2")
	}
	choose, err := makeChooser(*dist, *records)
	if err != nil {
		fatalf("%v", err)
	}
	c, err := newClient(*clientKind, splitMetas(*meta), *table, *opTimeout)
	if err != nil {
		fatalf("open table %q via %s: %v", *table, *meta, err)
	}
	defer c.Close()

	res := result{Client: *clientKind, Meta: *meta, Table: *table, Workload: w.name, Dist: *dist,
		Records: *records, ValueSize: *valueSize, Threads: *threads, TargetQPS: *targetQPS,
		Counts: map[string]int64{}}
	sk := []byte(*sortKey)
	if *load {
		lr := runLoad(c, *records, *threads, *valueSize, sk, false)
		res.Load = &lr
	}
	if *duration <= 0 {
		res.Workload = map[bool]string{true: "unload", false: "load"}[*unload && !*load]
	} else {
		runWorkload(c, &res, w, choose, sk, *warmup, *duration, parsePids(*serverPids))
	}
	if *unload {
		ur := runLoad(c, *records, *threads, *valueSize, sk, true)
		res.Unload = &ur
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "loadgen: "+format+"\n", args...)
	os.Exit(1)
}

func runWorkload(c kvClient, res *result, w workload, choose keyChooser, sk []byte,
	warmup, duration time.Duration, pids []int) {
	threads := res.Threads
	stats := make([]threadStats, threads)
	start := time.Now()
	measureFrom := start.Add(warmup)
	end := measureFrom.Add(duration)
	var interval float64 // ns per op in open loop
	if res.TargetQPS > 0 {
		interval = 1e9 / res.TargetQPS
	}
	var next int64
	var late int64
	var wg sync.WaitGroup
	cpu0 := make(chan cpuSample, 1)
	go func() {
		time.Sleep(time.Until(measureFrom))
		cpu0 <- sampleCPU(pids)
	}()
	for t := 0; t < threads; t++ {
		wg.Add(1)
		go func(st *threadStats, seed int64) {
			defer wg.Done()
			r := rand.New(rand.NewSource(seed))
			val := randomValue(r, res.ValueSize)
			st.lat = make([]int64, 0, 1<<16)
			var hk []byte
			for {
				var sched, origin time.Time
				if interval > 0 {
					i := atomic.AddInt64(&next, 1) - 1
					sched = start.Add(time.Duration(float64(i) * interval))
					if !sched.Before(end) {
						return
					}
					// Latency origin: the scheduled time when this worker is late (all workers
					// were busy: queueing), the actual start when it had to wait for the slot
					// (the sleep's overshoot is the load generator's, not the server's).
					origin = sched
					if d := time.Until(sched); d > 0 {
						time.Sleep(d)
						origin = time.Now()
					} else if d < -time.Millisecond && sched.After(measureFrom) {
						atomic.AddInt64(&late, 1)
					}
				} else {
					sched = time.Now()
					origin = sched
					if !sched.Before(end) {
						return
					}
				}
				k := choose(r)
				hk = hashKey(hk, k)
				var err error
				isGet := r.Float64() < w.readRatio
				var found bool
				if isGet {
					_, found, err = c.Get(hk, sk)
				} else {
					val[0], val[1] = byte(r.Intn(256)), byte(k)
					err = c.Set(hk, sk, val)
				}
				lat := time.Since(origin)
				if sched.Before(measureFrom) {
					continue
				}
				st.lat = append(st.lat, int64(lat))
				switch {
				case err != nil:
					st.fail(err)
				case isGet:
					st.gets++
					if !found {
						st.notFound++
					}
				default:
					st.sets++
				}
			}
		}(&stats[t], time.Now().UnixNano()+int64(t)*7919)
	}
	wg.Wait()
	res.CPU = cpuBetween(<-cpu0, sampleCPU(pids))
	var all []int64
	for i := range stats {
		st := &stats[i]
		all = append(all, st.lat...)
		res.Errors += st.errors
		res.Counts["get"] += st.gets
		res.Counts["get_notfound"] += st.notFound
		res.Counts["set"] += st.sets
		res.Samples = append(res.Samples, st.errSamples...)
	}
	if len(res.Samples) > 5 {
		res.Samples = res.Samples[:5]
	}
	res.DurationS = round(duration.Seconds(), 3)
	res.summary = summarize(all, duration)
	res.Behind = late
}
