package main

// check.go — the linearizability check of a recorded history: one read/write register per key
// (Porcupine model partitioned by key), unknown-outcome writes, verdicts and the visualisation.
// No I/O against the cluster here, so check_test.go can feed hand-made histories.

import (
	"fmt"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
)

// Op kinds.
const (
	opRead  = "r"
	opWrite = "w"
)

// Op statuses.
const (
	statusOK     = "ok"     // the client got a success reply (a read: Value holds what it returned)
	statusFailed = "failed" // error or timeout: a write may or may not have taken effect; a read is dropped
)

// Record is one client operation as recorded by a worker. Timestamps are nanoseconds on the
// monotonic clock since the start of the run. Value: what a write wrote, or what an ok read
// returned ("" = not found; writes never write "").
type Record struct {
	Client int    `json:"c"`
	Kind   string `json:"k"`
	Key    int    `json:"key"`
	Value  string `json:"v"`
	Call   int64  `json:"call"`
	Return int64  `json:"ret"`
	Status string `json:"s"`
	Err    string `json:"err,omitempty"`
}

// Verdict of a check.
type Verdict int

const (
	Linearizable Verdict = iota
	Violation
	Unknown // the check timed out: NOT a success
)

func (v Verdict) String() string {
	switch v {
	case Linearizable:
		return "true"
	case Violation:
		return "false"
	}
	return "unknown"
}

// ExitCode of the program for a verdict: 0 linearizable, 2 violation, 3 check timed out.
func (v Verdict) ExitCode() int {
	switch v {
	case Linearizable:
		return 0
	case Violation:
		return 2
	}
	return 3
}

type regInput struct {
	Write bool
	Key   int
	Value string // written value (writes)
}

type regOutput struct {
	Value   string // read result ("" = not found)
	Unknown bool   // a write whose outcome the client does not know
}

// registerModel: one register per key, initially "" (not found); writes store unique values.
var registerModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[int][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(regInput).Key
			byKey[k] = append(byKey[k], op)
		}
		keys := make([]int, 0, len(byKey))
		for k := range byKey {
			keys = append(keys, k)
		}
		sort.Ints(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() interface{} { return "" },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		in := input.(regInput)
		if in.Write {
			return true, in.Value
		}
		return output.(regOutput).Value == state.(string), state
	},
	Equal: func(a, b interface{}) bool { return a.(string) == b.(string) },
	DescribeOperation: func(input, output interface{}) string {
		in, out := input.(regInput), output.(regOutput)
		if in.Write {
			if out.Unknown {
				return fmt.Sprintf("set(k%d, %q) -> ?", in.Key, in.Value)
			}
			return fmt.Sprintf("set(k%d, %q)", in.Key, in.Value)
		}
		if out.Value == "" {
			return fmt.Sprintf("get(k%d) -> not found", in.Key)
		}
		return fmt.Sprintf("get(k%d) -> %q", in.Key, out.Value)
	},
	DescribeState: func(state interface{}) string {
		if state.(string) == "" {
			return "(not found)"
		}
		return fmt.Sprintf("%q", state.(string))
	},
}

// Prepared is a history turned into Porcupine operations.
type Prepared struct {
	Ops            []porcupine.Operation
	Keys           []int // keys of Ops[i] (parallel slice)
	DroppedReads   int   // failed reads: no output, dropped
	UnknownWrites  int   // failed writes kept, with return time = end of history
	PrunedUnknown  int   // failed writes whose value no read returned: dropped (see below)
	EndOfHistory   int64 // the "infinite" return time given to unknown writes
	NeverWritten   int   // ok reads of a value no operation ever wrote (a violation by itself)
	NeverWrittenEx []Record
}

// Prepare converts records into Porcupine operations.
//
// A failed write has an unknown outcome: it may take effect at any time after its call, even
// after the client gave up, so it gets the return time "end of history" (later than every other
// return). A failed read returned nothing and is dropped.
//
// If pruneUnobserved, a failed write whose value no ok read returned is dropped: it is
// equivalent to linearizing it after every other operation (its return time is infinite, so
// that is always allowed, and no read depends on it), so the verdict does not change; it only
// spares the checker the permutations of writes nobody saw (during an outage every client's
// writes to the unavailable partitions fail).
func Prepare(recs []Record, pruneUnobserved bool) Prepared {
	var p Prepared
	written := map[string]bool{}
	observed := map[string]bool{}
	for _, r := range recs {
		if r.Return > p.EndOfHistory {
			p.EndOfHistory = r.Return
		}
		if r.Call > p.EndOfHistory {
			p.EndOfHistory = r.Call
		}
		if r.Kind == opWrite {
			written[fmt.Sprintf("%d/%s", r.Key, r.Value)] = true
		} else if r.Status == statusOK && r.Value != "" {
			observed[fmt.Sprintf("%d/%s", r.Key, r.Value)] = true
		}
	}
	p.EndOfHistory++
	for _, r := range recs {
		switch {
		case r.Kind == opRead && r.Status != statusOK:
			p.DroppedReads++
			continue
		case r.Kind == opRead:
			if r.Value != "" && !written[fmt.Sprintf("%d/%s", r.Key, r.Value)] {
				p.NeverWritten++
				if len(p.NeverWrittenEx) < 5 {
					p.NeverWrittenEx = append(p.NeverWrittenEx, r)
				}
			}
			p.add(r.Client, regInput{Key: r.Key}, regOutput{Value: r.Value}, r.Call, r.Return, r.Key)
		case r.Status == statusOK:
			p.add(r.Client, regInput{Write: true, Key: r.Key, Value: r.Value}, regOutput{}, r.Call, r.Return, r.Key)
		default: // failed write: unknown outcome
			if pruneUnobserved && !observed[fmt.Sprintf("%d/%s", r.Key, r.Value)] {
				p.PrunedUnknown++
				continue
			}
			p.UnknownWrites++
			p.add(r.Client, regInput{Write: true, Key: r.Key, Value: r.Value}, regOutput{Unknown: true},
				r.Call, p.EndOfHistory, r.Key)
		}
	}
	return p
}

func (p *Prepared) add(client int, in regInput, out regOutput, call, ret int64, key int) {
	p.Ops = append(p.Ops, porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call, Return: ret})
	p.Keys = append(p.Keys, key)
}

// CheckResult of Check.
type CheckResult struct {
	Verdict       Verdict
	Elapsed       time.Duration
	ViolatingKeys []int // keys found non-linearizable (when Verdict == Violation)
	UndecidedKeys []int // keys whose per-key check ran out of time (informational)
}

// Check decides linearizability of the prepared history within timeout (the whole check,
// including the per-key search for the violating keys). A timeout gives Unknown, never success.
func Check(p Prepared, timeout time.Duration) CheckResult {
	start := time.Now()
	res := CheckResult{}
	switch porcupine.CheckOperationsTimeout(registerModel, p.Ops, timeout) {
	case porcupine.Ok:
		res.Verdict = Linearizable
	case porcupine.Illegal:
		res.Verdict = Violation
	default:
		res.Verdict = Unknown
	}
	if res.Verdict == Violation {
		// Which keys? Each key on its own, within what is left of the time budget.
		byKey := map[int][]porcupine.Operation{}
		for i, op := range p.Ops {
			byKey[p.Keys[i]] = append(byKey[p.Keys[i]], op)
		}
		keys := make([]int, 0, len(byKey))
		for k := range byKey {
			keys = append(keys, k)
		}
		sort.Ints(keys)
		for _, k := range keys {
			left := timeout - time.Since(start)
			if left <= 0 {
				res.UndecidedKeys = append(res.UndecidedKeys, k)
				continue
			}
			switch porcupine.CheckOperationsTimeout(registerModel, byKey[k], left) {
			case porcupine.Illegal:
				res.ViolatingKeys = append(res.ViolatingKeys, k)
			case porcupine.Unknown:
				res.UndecidedKeys = append(res.UndecidedKeys, k)
			}
		}
	}
	res.Elapsed = time.Since(start)
	return res
}

// Annotation for the visualisation (a fault injected by the runner), times as in the history.
type Annotation struct {
	Start, End  int64
	Description string
}

// Visualize writes Porcupine's HTML visualisation of the operations on the given keys (all
// keys if nil) to path.
func Visualize(p Prepared, keys []int, notes []Annotation, timeout time.Duration, path string) error {
	want := map[int]bool{}
	for _, k := range keys {
		want[k] = true
	}
	var ops []porcupine.Operation
	for i, op := range p.Ops {
		if len(keys) == 0 || want[p.Keys[i]] {
			ops = append(ops, op)
		}
	}
	_, info := porcupine.CheckOperationsVerbose(registerModel, ops, timeout)
	var ann []porcupine.Annotation
	for _, n := range notes {
		ann = append(ann, porcupine.Annotation{Tag: "faults", Start: n.Start, End: n.End,
			Description: n.Description, BackgroundColor: "#f6c6c6"})
	}
	if len(ann) > 0 {
		info.AddAnnotations(ann)
	}
	return porcupine.VisualizePath(registerModel, info, path)
}
