package detect

import (
	"github.com/imaged/imaged"

	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/imaged/imaged/onnx"
)

// BenchmarkDetect measures images per second through the detect op (resize, inference,
// post-processing, JSON) at 1 and 2 concurrent requests, against a bare loop of the same
// inferences on a tensor resized once: the difference is the service's overhead.
//
//	go test -run '^$' -bench Detect -benchtime 100x ./detect/
func BenchmarkDetect(b *testing.B) {
	s := ssdService(b)
	img := loadPhoto(b, "dog.jpg")
	o := opFromJSON(b, `{"op":"detect"}`)
	pool := s.rt.Pool(SSDModelFile, SSDInputs, SSDOutputs)
	in := onnx.Tensor{Shape: []int64{1, ssdSize, ssdSize, 3}, Data: resizeTF1(img, ssdSize, ssdSize)}
	ctx := context.Background()
	// Load the pool's sessions (two, each on one thread) before timing anything.
	var warm []*onnx.Session
	for i := 0; i < onnx.DefaultPoolSize; i++ {
		sess, err := pool.Get(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := sess.Run(ctx, in); err != nil {
			b.Fatal(err)
		}
		warm = append(warm, sess)
	}
	for _, sess := range warm {
		pool.Put(sess)
	}
	work := map[string]func() error{
		"service": func() error { _, err := s.Analyze(ctx, o, imaged.Pixels(img)); return err },
		"bare":    func() error { _, err := pool.Run(ctx, in); return err },
	}
	for _, conc := range []int{1, 2} {
		for _, name := range []string{"bare", "service"} {
			b.Run(fmt.Sprintf("%s/concurrent=%d", name, conc), func(b *testing.B) {
				run(b, conc, work[name])
			})
		}
	}
}

// run calls fn b.N times from conc goroutines and reports images/s, and the process's CPU time
// per image, which a machine shared with other work disturbs far less than wall time.
func run(b *testing.B, conc int, fn func() error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if err := fn(); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "images/s")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/image")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
