//go:build soak

package soak

// `make soak` runs TestSoak: SOAK_MINUTES of load (default 10) on each topology SOAK_TOPOLOGY
// names (embedded, production or both, the default), writing report.md, soak.png and the
// processes' logs under SOAK_OUT/<topology> (default soak-out/ at the module's root).

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/imaged/imaged/internal/testenv"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/internal/versitygw"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

const lease = 10 * time.Second

func TestSoak(t *testing.T) {
	root := moduleRoot(t)
	bin := os.Getenv("SOAK_BIN")
	if bin == "" {
		bin = filepath.Join(root, "bin", "imaged")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("the imaged binary (SOAK_BIN, default bin/imaged; make build): %v", err)
	}
	minutes := 10.0
	if v := os.Getenv("SOAK_MINUTES"); v != "" {
		m, err := strconv.ParseFloat(v, 64)
		if err != nil || m < 2.5 {
			t.Fatalf("SOAK_MINUTES=%q: want a number of minutes, at least 2.5 (2 of them are the warm-up)", v)
		}
		minutes = m
	}
	out := os.Getenv("SOAK_OUT")
	if out == "" {
		out = filepath.Join(root, "soak-out")
	}
	which := os.Getenv("SOAK_TOPOLOGY")
	if which == "" {
		which = "both"
	}
	if which != "both" && which != "embedded" && which != "production" {
		t.Fatalf("SOAK_TOPOLOGY=%q: want embedded, production or both", which)
	}
	in := Inputs{
		Photo:   readFile(t, root, "testdata/astronaut.jpg"),
		Cat:     readFile(t, root, "testdata/chelsea.jpg"),
		PNG:     readFile(t, root, "testdata/chelsea.png"),
		TextPNG: readFile(t, root, "ocr/testdata/eval/clean-00-dejavu-sans-22.png"),
	}
	for _, name := range []string{"embedded", "production"} {
		if which != "both" && which != name {
			continue
		}
		t.Run(name, func(t *testing.T) {
			data := t.TempDir()
			env := baseEnv(data)
			if name == "production" {
				env = append(env, productionEnv(t)...)
			}
			top := Topology{Name: name, Bin: bin, Env: env, Out: filepath.Join(out, name),
				Load: time.Duration(minutes * float64(time.Minute)), Warmup: 2 * time.Minute, Lease: lease,
				Settle: 30 * time.Second, SampleEvery: 5 * time.Second, KillEvery: 2 * time.Minute,
				Clients: 3, Think: 400 * time.Millisecond, Inputs: in, Logf: t.Logf}
			res, err := Run(context.Background(), top)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range res.Checks {
				v := "pass"
				if !c.Pass {
					v = "FAIL"
				}
				t.Logf("%s  %s: %s", v, c.Name, c.Detail)
			}
			t.Logf("report: %s\nplot: %s", res.ReportPath, res.PlotPath)
			if !res.Pass {
				t.Errorf("soak on %s failed a check (report: %s)", name, res.ReportPath)
			}
		})
	}
}

// baseEnv is what every process of both topologies gets: one data directory (the embedded
// database and blobs, the generated secrets), a short task lease and lease sweep, and the
// models and tools of the test environment.
func baseEnv(data string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"IMAGED_DATA_DIR=" + data,
		"IMAGED_TASK_LEASE=" + lease.String(), "IMAGED_LEASE_SWEEP=2s",
		"IMAGED_LOG_LEVEL=info", "IMAGED_ONNX_SESSIONS=1", "IMAGED_TESSERACT_POOL=1",
		"IMAGED_SHUTDOWN_GRACE=10s",
	}
	for _, k := range []string{"IMAGED_MODELS_DIR", "IMAGED_TOOLS_DIR", "OMP_THREAD_LIMIT", "LD_LIBRARY_PATH"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// productionEnv sets up PostgreSQL (a schema of the soak's own), RabbitMQ (its own vhost),
// a private versitygw (its own bucket) and Redis (its own key prefix), all removed afterwards.
func productionEnv(t *testing.T) []string {
	id := imaged.NewID()[:8]
	pgURL, redisAddr := testenv.PostgresURL(), testenv.RedisAddr()
	for what, addr := range map[string]string{"PostgreSQL": testenv.PostgresAddr(), "RabbitMQ": testenv.AMQPAddr(), "Redis": redisAddr} {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatalf("%s is not reachable at %s: %v", what, addr, err)
		}
		c.Close()
	}

	schema := "imaged_soak_" + id
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, pgURL)
		if err != nil {
			t.Errorf("PostgreSQL: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+schema+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})

	vhost := "imaged-soak-" + id
	for _, args := range [][]string{{"add_vhost", vhost}, {"set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"}} {
		if out, err := exec.Command("rabbitmqctl", append([]string{"-q"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("rabbitmqctl %v: %v\n%s", args, err, out)
		}
	}
	t.Cleanup(func() { _ = exec.Command("rabbitmqctl", "-q", "delete_vhost", vhost).Run() })

	gw := versitygw.Start(t)

	prefix := "imaged-soak-" + id + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
		defer rdb.Close()
		iter := rdb.Scan(ctx, 0, prefix+"*", 500).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	})

	return []string{
		"IMAGED_DATABASE_URL=" + pgURL + "&schema=" + schema + "&pool_min_conns=1&pool_max_conns=6",
		"IMAGED_QUEUE_URL=" + testenv.AMQPVhostURL(vhost, ""),
		"IMAGED_STORAGE_URL=" + gw.StorageURL("imaged-soak-"+id),
		"IMAGED_REDIS_URL=redis://" + redisAddr + "/0?key_prefix=" + prefix,
	}
}

func moduleRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for ; dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
	}
	t.Fatal("go.mod not found above " + dir)
	return ""
}

func readFile(t *testing.T, root, rel string) []byte {
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
