// Command chaos drives a Pegasus table with the official Go client and checks that what the
// clients observed is linearizable (Porcupine, one register per key).
//
// N worker goroutines do a mix of Set (unique values) and Get on a small set of hash keys
// (spread over the table's partitions) until -duration has passed or SIGTERM/SIGINT arrives,
// recording each operation with monotonic call/return times. A failed or timed-out operation
// has an unknown outcome: a write keeps "end of history" as its return time, a read is
// dropped. Then the history is checked and one JSON summary line goes to stdout.
//
// Exit status: 0 linearizable, 2 violation (the HTML visualisation is written to -viz),
// 3 the check timed out (verdict unknown), 4 too little progress (-min-ok), 1 setup errors.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"hash/crc64"
	"io"
	"log"
	"math/rand"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/apache/incubator-pegasus/go-client/pegalog"
	"github.com/apache/incubator-pegasus/go-client/pegasus"
)

type config struct {
	metas        []string
	table        string
	clients      int
	sessions     int
	keys         int
	partitions   int
	duration     time.Duration
	opTimeout    time.Duration
	failPause    time.Duration
	readRatio    float64
	checkTimeout time.Duration
	openTimeout  time.Duration
	progress     time.Duration
	seed         int64
	viz          string
	historyOut   string
	faults       string
	clientLog    string
	minOK        int
	rate         float64
	refresh      time.Duration
	prune        bool
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("chaos: ")
	var cfg config
	var metas string
	flag.StringVar(&metas, "meta", "127.0.0.1:34601", "meta servers, comma separated")
	flag.StringVar(&cfg.table, "table", "temp", "table")
	flag.IntVar(&cfg.clients, "clients", 8, "worker goroutines (each does one operation at a time)")
	flag.IntVar(&cfg.sessions, "sessions", 2, "independent pegasus.Client instances the workers are spread over")
	flag.IntVar(&cfg.keys, "keys", 20, "hash keys (one sort key each)")
	flag.IntVar(&cfg.partitions, "partitions", 8, "partitions of the table: keys are chosen to spread evenly over them (0: no spreading)")
	flag.DurationVar(&cfg.duration, "duration", 150*time.Second, "load duration (SIGTERM/SIGINT stops earlier)")
	flag.DurationVar(&cfg.opTimeout, "op-timeout", 2*time.Second, "context timeout of each operation")
	flag.DurationVar(&cfg.failPause, "fail-pause", 100*time.Millisecond, "a worker sleeps this long after a failed operation")
	flag.Float64Var(&cfg.readRatio, "read-ratio", 0.5, "fraction of operations that are reads")
	flag.DurationVar(&cfg.checkTimeout, "check-timeout", 60*time.Second, "bound of the linearizability check (then: unknown, exit 3)")
	flag.DurationVar(&cfg.openTimeout, "open-timeout", 60*time.Second, "how long to retry opening the table")
	flag.DurationVar(&cfg.progress, "progress", 5*time.Second, "progress line interval on stderr (0: none)")
	flag.Int64Var(&cfg.seed, "seed", 1, "seed of the workers' random choices")
	flag.StringVar(&cfg.viz, "viz", "chaos-violation.html", "where to write the Porcupine visualisation on a violation")
	flag.StringVar(&cfg.historyOut, "history", "", "write the history (JSON lines) here")
	flag.StringVar(&cfg.faults, "faults", "", "fault log of the runner (JSON lines {\"start_ns\",\"end_ns\",\"what\"}, wall clock) for the visualisation")
	flag.StringVar(&cfg.clientLog, "client-log", "", "go-client log file (default: discarded)")
	flag.Float64Var(&cfg.rate, "rate", 0, "total operations per second over all workers (0: as fast as they can)")
	flag.DurationVar(&cfg.refresh, "client-refresh", 0, "replace each pegasus.Client by a new one this often (0: never; see README)")
	flag.IntVar(&cfg.minOK, "min-ok", 1, "exit 4 if fewer operations succeeded")
	flag.BoolVar(&cfg.prune, "prune-unobserved", true, "drop failed writes whose value no read returned (verdict-preserving)")
	checkOnly := flag.String("check-history", "", "only check a history written by -history (no cluster needed)")
	flag.Parse()
	if *checkOnly != "" {
		os.Exit(checkFile(cfg, *checkOnly))
	}
	for _, m := range strings.Split(metas, ",") {
		if m = strings.TrimSpace(m); m != "" {
			cfg.metas = append(cfg.metas, m)
		}
	}
	if len(cfg.metas) == 0 || cfg.clients < 1 || cfg.keys < 1 || cfg.sessions < 1 || cfg.partitions < 0 ||
		cfg.readRatio < 0 || cfg.readRatio > 1 || cfg.duration <= 0 || cfg.opTimeout <= 0 || cfg.checkTimeout <= 0 {
		log.Fatal("bad flags (see -h)")
	}
	os.Exit(run(cfg))
}

// hashKeys picks n hash keys; with partitions > 0 key i lands on partition i % partitions
// under the go-client's routing (crc64 ECMA-variant of the hash key, modulo the partition count).
func hashKeys(n, partitions int) []string {
	table := crc64.MakeTable(0x9a6c9329ac4bc9b5) // go-client pegasus/util.go
	out := make([]string, n)
	for i := 0; i < n; i++ {
		for j := 0; ; j++ {
			k := fmt.Sprintf("chaos-%d-%d", i, j)
			if partitions == 0 || int(crc64.Checksum([]byte(k), table)%uint64(partitions)) == i%partitions {
				out[i] = k
				break
			}
		}
	}
	return out
}

var sortKey = []byte("v")

type counters struct{ ops, ok, failed atomic.Int64 }

func run(cfg config) int {
	if cfg.clientLog != "" {
		f, err := os.OpenFile(cfg.clientLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			log.Printf("client log: %v", err)
			return 1
		}
		defer f.Close()
		pegalog.SetLogger(log.New(f, "", log.LstdFlags|log.Lmicroseconds))
	} else {
		pegalog.SetLogger(log.New(io.Discard, "", 0)) // the default writes ./pegasus.log
	}
	keys := hashKeys(cfg.keys, cfg.partitions)

	// One pegasus.Client per session slot (retrying: the cluster may still be settling).
	slots := make([]*slot, cfg.sessions)
	deadline := time.Now().Add(cfg.openTimeout)
	for s := range slots {
		for {
			c, t, err := openClient(cfg)
			if err == nil {
				slots[s] = &slot{}
				slots[s].cur.Store(&session{client: c, table: t})
				break
			}
			if time.Now().After(deadline) {
				log.Printf("cannot open table %s via %v: %v", cfg.table, cfg.metas, err)
				return 1
			}
			time.Sleep(500 * time.Millisecond)
		}
	}

	stop := make(chan struct{})
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	var stopOnce sync.Once
	stopLoad := func() { stopOnce.Do(func() { close(stop) }) }
	go func() {
		select {
		case s := <-sigs:
			log.Printf("%v: stopping the load", s)
			stopLoad()
		case <-stop:
		}
	}()
	timer := time.AfterFunc(cfg.duration, stopLoad)
	defer timer.Stop()

	startWall := time.Now()
	start := time.Now() // monotonic reading: time.Since(start) is immune to wall-clock jumps
	now := func() int64 { return time.Since(start).Nanoseconds() }
	var cnt counters
	histories := make([][]Record, cfg.clients)
	var wg sync.WaitGroup
	for c := 0; c < cfg.clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(cfg.seed*1000003 + int64(c)))
			sl := slots[c%cfg.sessions]
			seq := 0
			var interval time.Duration // pacing of this worker under -rate
			if cfg.rate > 0 {
				interval = time.Duration(float64(cfg.clients) / cfg.rate * float64(time.Second))
			}
			next := time.Now()
			for {
				if interval > 0 {
					next = next.Add(interval)
					if d := time.Until(next); d > 0 {
						select {
						case <-stop:
							return
						case <-time.After(d):
						}
					} else if d < -time.Second {
						next = time.Now() // far behind (an outage): no burst to catch up
					}
				}
				select {
				case <-stop:
					return
				default:
				}
				k := rng.Intn(len(keys))
				hk := []byte(keys[k])
				r := Record{Client: c, Key: k}
				tb := sl.cur.Load().table
				ctx, cancel := context.WithTimeout(context.Background(), cfg.opTimeout)
				var err error
				if rng.Float64() < cfg.readRatio {
					r.Kind = opRead
					r.Call = now()
					var v []byte
					v, err = tb.Get(ctx, hk, sortKey)
					r.Return = now()
					r.Value = string(v)
				} else {
					seq++
					r.Kind = opWrite
					r.Value = fmt.Sprintf("c%d-%d", c, seq)
					r.Call = now()
					err = tb.Set(ctx, hk, sortKey, []byte(r.Value))
					r.Return = now()
				}
				cancel()
				cnt.ops.Add(1)
				if err != nil {
					r.Status = statusFailed
					r.Err = err.Error()
					if r.Kind == opRead {
						r.Value = ""
					}
					cnt.failed.Add(1)
				} else {
					r.Status = statusOK
					cnt.ok.Add(1)
				}
				histories[c] = append(histories[c], r)
				if err != nil && cfg.failPause > 0 {
					select {
					case <-stop:
					case <-time.After(cfg.failPause):
					}
				}
			}
		}(c)
	}
	if cfg.refresh > 0 {
		// Replace each slot's client by a new one every -client-refresh: a new client dials
		// every server at once, while a long-lived one redials a server it lost only 60 s
		// after its previous dial (go-client session.kDialInterval), so after a restart the
		// workers would not reach that server for up to a minute. The old client is closed
		// once the operations it may still be running have timed out.
		for _, sl := range slots {
			go func(sl *slot) {
				t := time.NewTicker(cfg.refresh)
				defer t.Stop()
				for {
					select {
					case <-stop:
						return
					case <-t.C:
					}
					c, tb, err := openClient(cfg)
					if err != nil {
						continue // keep the old one; try again next tick
					}
					old := sl.cur.Swap(&session{client: c, table: tb})
					clientRefreshes.Add(1)
					time.AfterFunc(cfg.opTimeout+time.Second, func() { old.client.Close() })
				}
			}(sl)
		}
	}
	if cfg.progress > 0 {
		go func() {
			t := time.NewTicker(cfg.progress)
			defer t.Stop()
			var lastOps, lastOK int64
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					ops, ok := cnt.ops.Load(), cnt.ok.Load()
					log.Printf("t=%.0fs ops=%d ok=%d failed=%d (last %s: %d ops, %d ok)",
						time.Since(start).Seconds(), ops, ok, cnt.failed.Load(), cfg.progress, ops-lastOps, ok-lastOK)
					lastOps, lastOK = ops, ok
				}
			}
		}()
	}
	<-stop
	log.Printf("load stopped after %.1fs", time.Since(start).Seconds())
	wg.Wait() // in-flight operations end within -op-timeout
	loadSeconds := time.Since(start).Seconds()
	go func() { // closing can block on dead servers; it does not matter for the result
		for _, sl := range slots {
			sl.cur.Load().client.Close()
		}
	}()

	var recs []Record
	for _, h := range histories {
		recs = append(recs, h...)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Call < recs[j].Call })
	if cfg.historyOut != "" {
		if err := writeHistory(cfg.historyOut, recs, keys); err != nil {
			log.Printf("history: %v", err)
		}
	}

	return finish(cfg, recs, keys, startWall, loadSeconds)
}

// A session slot: the pegasus.Client (and its table) the workers of the slot currently use.
type session struct {
	client pegasus.Client
	table  pegasus.TableConnector
}

type slot struct{ cur atomic.Pointer[session] }

var clientRefreshes atomic.Int64 // clients replaced under -client-refresh

func openClient(cfg config) (pegasus.Client, pegasus.TableConnector, error) {
	c := pegasus.NewClient(pegasus.Config{MetaServers: cfg.metas})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t, err := c.OpenTable(ctx, cfg.table)
	if err != nil {
		go c.Close()
		return nil, nil, err
	}
	return c, t, nil
}

// finish checks the history, prints the summary line and returns the exit status.
func finish(cfg config, recs []Record, keys []string, startWall time.Time, loadSeconds float64) int {
	sum := summarize(recs, keys, cfg, startWall, loadSeconds)
	prep := Prepare(recs, cfg.prune)
	log.Printf("%d operations; checking linearizability (%d ops for Porcupine, "+
		"%d unknown writes, %d unobserved unknown writes pruned, %d failed reads dropped, bound %s)",
		len(recs), len(prep.Ops), prep.UnknownWrites, prep.PrunedUnknown,
		prep.DroppedReads, cfg.checkTimeout)
	res := Check(prep, cfg.checkTimeout)
	switch res.Verdict {
	case Linearizable:
		sum["linearizable"] = true
	case Violation:
		sum["linearizable"] = false
	default:
		sum["linearizable"] = "unknown"
	}
	sum["check_seconds"] = round3(res.Elapsed.Seconds())
	sum["checked_ops"] = len(prep.Ops)
	sum["unknown_writes_checked"] = prep.UnknownWrites
	sum["unknown_writes_pruned"] = prep.PrunedUnknown
	sum["failed_reads_dropped"] = prep.DroppedReads
	sum["reads_of_unwritten_values"] = prep.NeverWritten
	if res.Verdict == Violation {
		vk := []string{}
		for _, k := range res.ViolatingKeys {
			vk = append(vk, keys[k])
		}
		sum["violating_keys"] = vk
		if len(res.UndecidedKeys) > 0 {
			sum["undecided_keys"] = len(res.UndecidedKeys)
		}
		for _, r := range prep.NeverWrittenEx {
			log.Printf("read of a value never written: client %d get(%s) -> %q at [%d, %d] ns", r.Client, keys[r.Key], r.Value, r.Call, r.Return)
		}
		notes := readFaults(cfg.faults, startWall)
		vizKeys := res.ViolatingKeys
		if len(vizKeys) > 3 {
			vizKeys = vizKeys[:3]
		}
		if err := Visualize(prep, vizKeys, notes, cfg.checkTimeout, cfg.viz); err != nil {
			log.Printf("visualisation: %v", err)
		} else {
			sum["viz"] = cfg.viz
			log.Printf("NOT LINEARIZABLE: keys %v; visualisation: %s", sum["violating_keys"], cfg.viz)
		}
	} else if res.Verdict == Unknown {
		log.Printf("the check did not finish within %s: verdict unknown (NOT a success)", cfg.checkTimeout)
	}
	code := res.Verdict.ExitCode()
	if code == 0 && sum["ok"].(int) < cfg.minOK {
		log.Printf("too little progress: %d ok operations (-min-ok %d)", sum["ok"], cfg.minOK)
		code = 4
	}
	sum["exit"] = code
	line, _ := json.Marshal(sum)
	fmt.Println(string(line))
	return code
}

func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

func summarize(recs []Record, keys []string, cfg config, startWall time.Time, loadSeconds float64) map[string]interface{} {
	var ok, failed, reads, writes, readsOK, writesOK, notFound int
	errs := map[string]int{}
	nsec := int(loadSeconds) + 1
	okPerSec := make([]int, nsec)
	failPerSec := make([]int, nsec)
	for _, r := range recs {
		sec := int(r.Return / 1e9)
		if sec >= nsec {
			sec = nsec - 1
		}
		if r.Kind == opRead {
			reads++
		} else {
			writes++
		}
		if r.Status == statusOK {
			ok++
			okPerSec[sec]++
			if r.Kind == opRead {
				readsOK++
				if r.Value == "" {
					notFound++
				}
			} else {
				writesOK++
			}
		} else {
			failed++
			failPerSec[sec]++
			errs[errClass(r.Err)]++
		}
	}
	perPart := map[string]int{}
	if cfg.partitions > 0 {
		for i := range keys {
			perPart[fmt.Sprint(i%cfg.partitions)]++
		}
	}
	return map[string]interface{}{
		"ops": len(recs), "ok": ok, "failed_or_unknown": failed,
		"reads": reads, "writes": writes, "reads_ok": readsOK, "writes_ok": writesOK,
		"writes_unknown": writes - writesOK, "reads_failed": reads - readsOK, "reads_not_found": notFound,
		"errors": errs, "clients": cfg.clients, "sessions": cfg.sessions, "keys": len(keys),
		"keys_per_partition": perPart, "table": cfg.table,
		"load_seconds": round3(loadSeconds), "start_wall_ns": startWall.UnixNano(),
		"ok_per_sec": okPerSec, "failed_per_sec": failPerSec,
		"client_refreshes": clientRefreshes.Load(),
	}
}

// errClass shortens an error message to a countable class (its first words).
func errClass(e string) string {
	for _, k := range []string{"context deadline exceeded", "ERR_TIMEOUT", "ERR_OBJECT_NOT_FOUND", "ERR_INVALID_STATE",
		"ERR_NETWORK_FAILURE", "ERR_SESSION_RESET", "connection refused", "ERR_NOT_ENOUGH_MEMBER",
		"ERR_PARENT_PARTITION_MISUSED", "ERR_BUSY", "EOF", "broken pipe", "connection reset"} {
		if strings.Contains(e, k) {
			return k
		}
	}
	if len(e) > 60 {
		e = e[:60]
	}
	return e
}

func writeHistory(path string, recs []Record, keys []string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	_ = enc.Encode(map[string]interface{}{"keys": keys})
	for _, r := range recs {
		if err := enc.Encode(r); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// checkFile re-checks a history file written by -history.
func checkFile(cfg config, path string) int {
	f, err := os.Open(path)
	if err != nil {
		log.Print(err)
		return 1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	var keys []string
	var recs []Record
	var end int64
	for n := 0; sc.Scan(); n++ {
		if n == 0 {
			var hdr struct {
				Keys []string `json:"keys"`
			}
			if err := json.Unmarshal(sc.Bytes(), &hdr); err != nil || len(hdr.Keys) == 0 {
				log.Printf("%s: the first line must be {\"keys\": [...]}", path)
				return 1
			}
			keys = hdr.Keys
			continue
		}
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			log.Printf("%s:%d: %v", path, n+1, err)
			return 1
		}
		if r.Key < 0 || r.Key >= len(keys) || (r.Kind != opRead && r.Kind != opWrite) {
			log.Printf("%s:%d: bad record", path, n+1)
			return 1
		}
		if r.Return > end {
			end = r.Return
		}
		recs = append(recs, r)
	}
	if err := sc.Err(); err != nil {
		log.Print(err)
		return 1
	}
	cfg.partitions, cfg.clients, cfg.sessions = 0, 0, 0
	return finish(cfg, recs, keys, time.Unix(0, 0), float64(end)/1e9)
}

// readFaults reads the runner's fault log (wall-clock nanoseconds) and maps it onto the
// history's monotonic time line (start of the run = startWall).
func readFaults(path string, startWall time.Time) []Annotation {
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []Annotation
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e struct {
			StartNs int64  `json:"start_ns"`
			EndNs   int64  `json:"end_ns"`
			What    string `json:"what"`
		}
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.StartNs == 0 {
			continue
		}
		a := Annotation{Start: e.StartNs - startWall.UnixNano(), Description: e.What}
		if e.EndNs > e.StartNs {
			a.End = e.EndNs - startWall.UnixNano()
		}
		out = append(out, a)
	}
	return out
}
