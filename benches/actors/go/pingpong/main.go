// Ping-pong between two goroutines over two unbuffered channels.
//
// Usage: pingpong [ROUND_TRIPS]   (default 1,000,000)
//
// A round trip is two hops (one channel delivery each way); the timed part
// excludes a 10,000-round-trip warm-up. Prints one line:
//
//	RESULT bench=pingpong lang=go value=<ns per hop> unit=ns/hop hops=<2N>
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

func main() {
	n := 1_000_000
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	ping := make(chan int)
	pong := make(chan int)
	go func() { // pong: answer every ping
		for v := range ping {
			pong <- v
		}
	}()
	elapsed := make(chan time.Duration)
	go func() { // ping
		rounds := func(k int) {
			for i := 0; i < k; i++ {
				ping <- i
				<-pong
			}
		}
		rounds(10_000)
		start := time.Now()
		rounds(n)
		elapsed <- time.Since(start)
		close(ping)
	}()
	d := <-elapsed
	hops := 2 * n
	fmt.Printf("RESULT bench=pingpong lang=go value=%.1f unit=ns/hop hops=%d gomaxprocs=%d\n",
		float64(d.Nanoseconds())/float64(hops), hops, runtime.GOMAXPROCS(0))
}
