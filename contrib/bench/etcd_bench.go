// etcd_bench: the peer's side of kv_bench. The same load and the same figures as
// kv_bench.c, against an etcd v3 cluster over its native gRPC client: N clients each keep
// one request in flight for a fixed time, putting or getting values of a fixed size under
// keys drawn at random from a fixed key space (all of them put before the gets); a phase
// runs -warmup unmeasured, then -duration measured; a request counts when it started in
// the measured window. Prints a table, or JSON in kv_bench's layout (-json FILE, '-').
//
// Debian ships no etcd benchmark tool, so this is built from Debian packages only, with no
// module download (compare.sh does it):
//
//	apt-get install -y golang-go golang-etcd-server-dev
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o etcd_bench etcd_bench.go
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.etcd.io/etcd/clientv3"
)

type phaseResult struct {
	Op            string  `json:"op"`
	Clients       int     `json:"clients"`
	ValSize       int     `json:"val_size"`
	Seconds       float64 `json:"seconds"`
	Requests      int     `json:"requests"`
	Errors        int     `json:"errors"`
	FirstError    *string `json:"first_error"`
	Rate          float64 `json:"rate"`
	P50ms         float64 `json:"p50_ms"`
	P99ms         float64 `json:"p99_ms"`
	P999ms        float64 `json:"p999_ms"`
	MaxMs         float64 `json:"max_ms"`
	ClientCPUPct  float64 `json:"client_cpu_pct"`
	ServersCPUPct float64 `json:"servers_cpu_pct"`
	HostCPUPct    float64 `json:"host_cpu_pct"`
}

type report struct {
	Tool      string        `json:"tool"`
	System    string        `json:"system"`
	Endpoints string        `json:"endpoints"`
	Time      string        `json:"time"`
	Host      string        `json:"host"`
	CPUs      int           `json:"cpus"`
	LoadAvg1m float64       `json:"loadavg_1m_at_start"`
	ValSize   int           `json:"val_size"`
	Keys      int           `json:"keys"`
	DurationS float64       `json:"duration_s"`
	WarmupS   float64       `json:"warmup_s"`
	Results   []phaseResult `json:"results"`
}

type cpuSample struct {
	wall                time.Time
	self, servers       float64 // CPU seconds
	hostBusy, hostTotal float64 // jiffies
}

func sampleCPU(pids []int) cpuSample {
	s := cpuSample{wall: time.Now()}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
	}
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		// the command name may hold spaces: fields start after the last ')'
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		s.servers += (ut + st) / 100 // USER_HZ
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
		for i := 1; i < len(f) && i <= 8; i++ {
			x, _ := strconv.ParseFloat(f[i], 64)
			s.hostTotal += x
			if i != 4 && i != 5 { // idle, iowait
				s.hostBusy += x
			}
		}
	}
	return s
}

func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	v, err := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	if err != nil {
		return -1
	}
	return v
}

// Nearest rank, as kv_bench: the smallest sample with at least q of them at or below it.
func percentileMs(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(q * float64(len(sorted))))
	if rank < 1 {
		rank = 1
	}
	if rank > len(sorted) {
		rank = len(sorted)
	}
	return float64(sorted[rank-1].Nanoseconds()) / 1e6
}

func key(i int) string { return fmt.Sprintf("k%08d", i) }

// splitmix64, as kv_bench: one generator per client.
func next(state *uint64) uint64 {
	*state += 0x9e3779b97f4a7c15
	z := *state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

type bench struct {
	conns    []*clientv3.Client
	value    string
	keys     int
	timeout  time.Duration
	warmup   time.Duration
	duration time.Duration
	pids     []int
}

func (b *bench) do(c *clientv3.Client, op string, k string) error {
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	defer cancel()
	var err error
	switch op {
	case "put":
		_, err = c.Put(ctx, k, b.value)
	case "get":
		var r *clientv3.GetResponse
		r, err = c.Get(ctx, k)
		if err == nil && (len(r.Kvs) != 1 || len(r.Kvs[0].Value) != len(b.value)) {
			err = fmt.Errorf("get %s: missing or wrong size", k)
		}
	case "get-serializable":
		_, err = c.Get(ctx, k, clientv3.WithSerializable())
	}
	return err
}

func (b *bench) prefill(clients int) error {
	var wg sync.WaitGroup
	errs := make([]error, clients)
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < b.keys && errs[w] == nil; i += clients {
				errs[w] = b.do(b.conns[w%len(b.conns)], "put", key(i))
			}
		}(w)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) phase(op string, clients int) phaseResult {
	start := time.Now()
	measureFrom := start.Add(b.warmup)
	deadline := measureFrom.Add(b.duration)
	lat := make([][]time.Duration, clients)
	errs := make([]int, clients)
	firstErr := make([]error, clients)
	var wg sync.WaitGroup
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := uint64(w)*7919 + 1
			c := b.conns[w%len(b.conns)]
			for {
				t0 := time.Now()
				if !t0.Before(deadline) {
					return
				}
				err := b.do(c, op, key(int(next(&rng)%uint64(b.keys))))
				if t0.Before(measureFrom) {
					continue
				}
				if err != nil {
					if firstErr[w] == nil {
						firstErr[w] = err
					}
					errs[w]++
					continue
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}(w)
	}
	time.Sleep(time.Until(measureFrom))
	cpu0 := sampleCPU(b.pids)
	wg.Wait()
	cpu1 := sampleCPU(b.pids)
	elapsed := time.Since(measureFrom).Seconds()

	var all []time.Duration
	r := phaseResult{Op: op, Clients: clients, ValSize: len(b.value), Seconds: elapsed}
	for w := range lat {
		all = append(all, lat[w]...)
		r.Errors += errs[w]
		if firstErr[w] != nil && r.FirstError == nil {
			msg := firstErr[w].Error()
			r.FirstError = &msg
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	r.Requests = len(all)
	r.Rate = float64(len(all)) / elapsed
	r.P50ms, r.P99ms, r.P999ms = percentileMs(all, 0.5), percentileMs(all, 0.99), percentileMs(all, 0.999)
	if len(all) > 0 {
		r.MaxMs = float64(all[len(all)-1].Nanoseconds()) / 1e6
	}
	if wall := cpu1.wall.Sub(cpu0.wall).Seconds(); wall > 0 {
		r.ClientCPUPct = 100 * (cpu1.self - cpu0.self) / wall
		r.ServersCPUPct = 100 * (cpu1.servers - cpu0.servers) / wall
	}
	if t := cpu1.hostTotal - cpu0.hostTotal; t > 0 {
		r.HostCPUPct = 100 * (cpu1.hostBusy - cpu0.hostBusy) / t
	}
	return r
}

func printRow(r phaseResult) {
	fmt.Printf("%-16s %7d %8.2f %9d %7d %10.1f %9.3f %9.3f %9.3f %9.3f %18s\n",
		r.Op, r.Clients, r.Seconds, r.Requests, r.Errors, r.Rate, r.P50ms, r.P99ms,
		r.P999ms, r.MaxMs,
		fmt.Sprintf("%.0f/%.0f/%.0f", r.ClientCPUPct, r.ServersCPUPct, r.HostCPUPct))
	if r.FirstError != nil {
		fmt.Printf("  first error: %s\n", *r.FirstError)
	}
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad number %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func main() {
	endpoints := flag.String("endpoints", "127.0.0.1:2379", "client URLs, comma-separated")
	clientList := flag.String("clients", "1,64", "client counts, comma-separated")
	opList := flag.String("ops", "put,get", "put, get (linearizable), get-serializable")
	duration := flag.Float64("duration", 10, "measured seconds per phase")
	warmup := flag.Float64("warmup", 1, "unmeasured seconds before each phase")
	valSize := flag.Int("val-size", 1024, "value bytes")
	keys := flag.Int("keys", 10000, "key space k00000000..")
	maxConns := flag.Int("conns", 16, "gRPC connections the clients share, at most")
	pidList := flag.String("pids", "", "server pids whose CPU to report, comma-separated")
	jsonPath := flag.String("json", "", "also write JSON to FILE; '-': JSON on stdout only")
	label := flag.String("label", "etcd", "the \"system\" field of the JSON")
	flag.Parse()

	clients, err := parseInts(*clientList)
	if err == nil && len(clients) == 0 {
		err = fmt.Errorf("no client count")
	}
	pids, perr := parseInts(*pidList)
	if err == nil {
		err = perr
	}
	ops := strings.Split(*opList, ",")
	for _, op := range ops {
		if op != "put" && op != "get" && op != "get-serializable" {
			err = fmt.Errorf("unknown op %q", op)
		}
	}
	if err != nil || *keys < 1 || *valSize < 0 || *duration <= 0 || *warmup < 0 {
		fmt.Fprintln(os.Stderr, "etcd_bench: bad arguments:", err)
		os.Exit(2)
	}
	maxClients := 0
	for _, c := range clients {
		if c > maxClients {
			maxClients = c
		}
	}
	n := maxClients
	if n > *maxConns {
		n = *maxConns
	}
	host, _ := os.Hostname()
	rep := report{Tool: "etcd_bench", System: *label, Endpoints: *endpoints,
		Time: time.Now().UTC().Format("2006-01-02T15:04:05Z"), Host: host,
		CPUs: runtime.NumCPU(), LoadAvg1m: loadAvg(), ValSize: *valSize, Keys: *keys,
		DurationS: *duration, WarmupS: *warmup}

	b := &bench{value: strings.Repeat("v", *valSize), keys: *keys, timeout: 30 * time.Second,
		warmup:   time.Duration(*warmup * float64(time.Second)),
		duration: time.Duration(*duration * float64(time.Second)), pids: pids}
	for i := 0; i < n; i++ {
		c, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(*endpoints, ","),
			DialTimeout: 10 * time.Second})
		if err != nil {
			fmt.Fprintln(os.Stderr, "etcd_bench: connect:", err)
			os.Exit(1)
		}
		defer c.Close()
		b.conns = append(b.conns, c)
	}
	table := *jsonPath != "-"
	if table {
		fmt.Printf("# etcd_bench: %s at %s, %d-byte values, %d keys, %.1f s measured after %.1f s warm-up per phase\n",
			*label, *endpoints, *valSize, *keys, *duration, *warmup)
		fmt.Printf("%-16s %7s %8s %9s %7s %10s %9s %9s %9s %9s %18s\n", "op", "clients",
			"seconds", "requests", "errors", "req/s", "p50 ms", "p99 ms", "p999 ms",
			"max ms", "cpu % cli/srv/host")
	}
	filled := false
	failed := false
	for _, op := range ops {
		if op != "put" && !filled {
			if err := b.prefill(maxClients); err != nil {
				fmt.Fprintln(os.Stderr, "etcd_bench: prefill:", err)
				os.Exit(1)
			}
			filled = true
		}
		for _, c := range clients {
			r := b.phase(op, c)
			failed = failed || r.Errors > 0
			rep.Results = append(rep.Results, r)
			if table {
				printRow(r)
			}
		}
	}
	if *jsonPath != "" {
		out, err := json.MarshalIndent(rep, "", " ")
		if err == nil && *jsonPath == "-" {
			_, err = fmt.Println(string(out))
		} else if err == nil {
			err = os.WriteFile(*jsonPath, append(out, '\n'), 0644)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "etcd_bench: json:", err)
			os.Exit(1)
		}
	}
	if failed {
		os.Exit(1)
	}
}
