package main

import (
	"bytes"
	"compress/zlib"
	"crypto/rand"
	"encoding/binary"
	"hash/crc32"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

// bombPNG is a decompression bomb that stays within the limits: a 10000×10000 grey PNG of
// about 100 kB that decodes to 100 MB of pixels.
func bombPNG(t *testing.T) []byte {
	t.Helper()
	const side = 10000
	chunk := func(buf *bytes.Buffer, typ string, data []byte) {
		binary.Write(buf, binary.BigEndian, uint32(len(data)))
		buf.WriteString(typ)
		buf.Write(data)
		crc := crc32.NewIEEE()
		crc.Write([]byte(typ))
		crc.Write(data)
		binary.Write(buf, binary.BigEndian, crc.Sum32())
	}
	var out bytes.Buffer
	out.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], side)
	binary.BigEndian.PutUint32(ihdr[4:], side)
	ihdr[8], ihdr[9] = 8, 0 // 8-bit greyscale
	chunk(&out, "IHDR", ihdr)
	var idat bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&idat, zlib.BestCompression)
	row := make([]byte, side+1) // filter byte 0, then zeros
	for range side {
		zw.Write(row)
	}
	zw.Close()
	chunk(&out, "IDAT", idat.Bytes())
	chunk(&out, "IEND", nil)
	return out.Bytes()
}

// slowReader hands out size bytes at about rate bytes per second.
type slowReader struct {
	left, rate int
	start      time.Time
	sent       int
}

func (r *slowReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if r.start.IsZero() {
		r.start = time.Now()
	}
	if ahead := time.Duration(float64(r.sent)/float64(r.rate)*float64(time.Second)) - time.Since(r.start); ahead > 0 {
		time.Sleep(ahead)
	}
	n := min(len(p), r.left, 64<<10)
	rand.Read(p[:n])
	r.left -= n
	r.sent += n
	return n, nil
}

type latencies []time.Duration

func (l latencies) pct(p float64) time.Duration {
	s := slices.Clone(l)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// TestOneClientsBombsAndBigBodiesDoNotSlowOthers runs a load: one client sends decompression
// bombs to the synchronous path as fast as it is let and a 50 MB body slowly, while another
// client's small synchronous resizes are timed, before and during. The other client is never
// refused and its latency stays bounded (its requests take the next free pipeline slot ahead of
// the attacker's queued ones); the numbers are logged.
func TestOneClientsBombsAndBigBodiesDoNotSlowOthers(t *testing.T) {
	if testing.Short() {
		t.Skip("a load run")
	}
	s := startServer(t, "", "IMAGED_WORKERS=0", "IMAGED_MAX_INFLIGHT=4", "IMAGED_READ_TIMEOUT=2m")
	attacker := s.createKey("attacker")
	bomb := bombPNG(t)
	small := readTestdata(t, "chelsea.png")
	smallOps := `[{"op":"resize","width":64},{"op":"convert","format":"jpeg"}]`

	victim := func(n int) (latencies, map[int]int) {
		var l latencies
		codes := map[int]int{}
		for range n {
			start := time.Now()
			r := s.postMultipart("/v1/process", "small.png", small, map[string]string{"ops": smallOps})
			l = append(l, time.Since(start))
			codes[r.status]++
		}
		return l, codes
	}
	base, baseCodes := victim(15)
	if baseCodes[200] != 15 {
		t.Fatalf("baseline: %v", baseCodes)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	attackCodes := map[int]int{}
	count := func(code int) { mu.Lock(); attackCodes[code]++; mu.Unlock() }
	post := func(body io.Reader, ct string) int {
		req, _ := http.NewRequest("POST", s.base+"/v1/process", body)
		req.Header.Set("Content-Type", ct)
		req.Header.Set("X-API-Key", attacker)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	bombBody, bombCT := multipartBody(t, "bomb.png", bomb, map[string]string{"ops": `[{"op":"resize","width":100},{"op":"convert","format":"jpeg"}]`})
	bombBytes, _ := io.ReadAll(bombBody)
	for range 6 { // more bombs at once than the server has slots
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				count(post(bytes.NewReader(bombBytes), bombCT))
			}
		}()
	}
	bigDone := make(chan int, 1)
	go func() {
		// A raw 50 MB body, just under the limit, at 10 MB/s.
		req, _ := http.NewRequest("POST", s.base+"/v1/images", &slowReader{left: 50<<20 - 1024, rate: 10 << 20})
		req.Header.Set("X-API-Key", attacker)
		req.Header.Set("Content-Type", "image/png")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			bigDone <- 0
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		bigDone <- resp.StatusCode
	}()
	time.Sleep(500 * time.Millisecond)
	under, underCodes := victim(15)
	close(stop)
	wg.Wait()
	big := <-bigDone

	t.Logf("victim, alone:        p50 %v  p95 %v  max %v", base.pct(0.5).Round(time.Millisecond), base.pct(0.95).Round(time.Millisecond), base.pct(1).Round(time.Millisecond))
	t.Logf("victim, under attack: p50 %v  p95 %v  max %v  answers %v", under.pct(0.5).Round(time.Millisecond), under.pct(0.95).Round(time.Millisecond), under.pct(1).Round(time.Millisecond), underCodes)
	t.Logf("attacker: bomb answers %v; 50 MB body answered %d", attackCodes, big)
	if underCodes[200] != 15 {
		t.Fatalf("the victim was refused under attack: %v", underCodes)
	}
	// The attacker is not refused for concurrency (it waits in line for its slots, behind the
	// victim); only a full line would answer 503.
	for code := range attackCodes {
		if code == 429 || (code >= 500 && code != 503) || code == 0 {
			t.Fatalf("the attacker's bombs were answered %v; want 2xx/4xx, or 503 for a full line", attackCodes)
		}
	}
	if big != 400 && big != 415 {
		t.Fatalf("the 50 MB non-image body: %d", big)
	}
	if p95 := under.pct(0.95); p95 > 5*time.Second {
		t.Fatalf("the victim's p95 under attack is %v", p95)
	}
}
