// A ring of N goroutines, each blocked receiving on its own unbuffered
// channel and forwarding to the next one's. A token (the number of hops
// still to make) goes round the ring M times.
//
// Usage: ring [N] [M]   (defaults 100,000 and 10)
//
// Spawning the ring and one warm-up round (which leaves every goroutine
// parked in its receive) are not timed. Prints one line:
//
//	RESULT bench=ring lang=go value=<ns per hop> unit=ns/hop hops=<N*M>
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

func main() {
	n, m := 100_000, 10
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	if len(os.Args) > 2 {
		m, _ = strconv.Atoi(os.Args[2])
	}
	chans := make([]chan int, n)
	for i := range chans {
		chans[i] = make(chan int)
	}
	done := make(chan struct{})
	for i := 0; i < n; i++ {
		in, out := chans[i], chans[(i+1)%n]
		go func() {
			for t := range in {
				if t == 0 {
					done <- struct{}{}
				} else {
					out <- t - 1
				}
			}
		}()
	}
	// Warm-up round: n hops.
	chans[0] <- n
	<-done
	hops := n * m
	start := time.Now()
	chans[0] <- hops
	<-done
	d := time.Since(start)
	fmt.Printf("RESULT bench=ring lang=go value=%.1f unit=ns/hop hops=%d actors=%d gomaxprocs=%d\n",
		float64(d.Nanoseconds())/float64(hops), hops, n, runtime.GOMAXPROCS(0))
}
