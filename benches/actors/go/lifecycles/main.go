// Spawn -> run -> exit lifecycles: the driver (the main goroutine) keeps
// IN_FLIGHT tiny request goroutines alive at once; each computes x*x+1,
// sends it to the driver over one shared unbuffered channel and exits. For
// every answer the driver spawns a new one, until TOTAL have run.
//
// Usage: lifecycles [TOTAL] [IN_FLIGHT]   (defaults 2,000,000 and 10,000)
//
// Prints one line:
//
//	RESULT bench=lifecycles lang=go value=<lifecycles per second> unit=lifecycles/s total=<TOTAL>
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

func request(driver chan<- int64, x int64) {
	driver <- x*x + 1
}

func main() {
	total, inflight := int64(2_000_000), int64(10_000)
	if len(os.Args) > 1 {
		total, _ = strconv.ParseInt(os.Args[1], 10, 64)
	}
	if len(os.Args) > 2 {
		inflight, _ = strconv.ParseInt(os.Args[2], 10, 64)
	}
	results := make(chan int64)
	start := time.Now()
	var spawned int64
	for ; spawned < inflight && spawned < total; spawned++ {
		go request(results, spawned)
	}
	var sum int64
	for done := int64(0); done < total; done++ {
		sum += <-results
		if spawned < total {
			go request(results, spawned)
			spawned++
		}
	}
	d := time.Since(start)
	var want int64 // sum of x*x+1 for x in [0, total)
	for x := int64(0); x < total; x++ {
		want += x*x + 1
	}
	if sum != want {
		fmt.Fprintf(os.Stderr, "wrong sum %d, want %d\n", sum, want)
		os.Exit(1)
	}
	fmt.Printf("RESULT bench=lifecycles lang=go value=%.0f unit=lifecycles/s total=%d in_flight=%d ns_per_lifecycle=%.1f gomaxprocs=%d\n",
		float64(total)/d.Seconds(), total, inflight, float64(d.Nanoseconds())/float64(total), runtime.GOMAXPROCS(0))
}
