// Skynet (github.com/atemerev/skynet), written as in that repository's Go
// version: a 10-ary tree of goroutines, 1,111,111 for a million leaves;
// every leaf sends its ordinal to its parent over the parent's unbuffered
// channel, every parent sums its ten children and sends the sum up.
//
// Usage: skynet [LEAVES]   (default 1,000,000; a power of ten)
//
// Times from spawning the root to receiving its result. Prints one line:
//
//	RESULT bench=skynet lang=go value=<ms> unit=ms result=499999500000
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

func skynet(c chan int, num, size, div int) {
	if size == 1 {
		c <- num
		return
	}
	rc := make(chan int)
	for i := 0; i < div; i++ {
		go skynet(rc, num+i*(size/div), size/div, div)
	}
	sum := 0
	for i := 0; i < div; i++ {
		sum += <-rc
	}
	c <- sum
}

func main() {
	leaves := 1_000_000
	if len(os.Args) > 1 {
		leaves, _ = strconv.Atoi(os.Args[1])
	}
	c := make(chan int)
	start := time.Now()
	go skynet(c, 0, leaves, 10)
	result := <-c
	d := time.Since(start)
	want := leaves * (leaves - 1) / 2
	if result != want {
		fmt.Fprintf(os.Stderr, "wrong result %d, want %d\n", result, want)
		os.Exit(1)
	}
	fmt.Printf("RESULT bench=skynet lang=go value=%.1f unit=ms result=%d gomaxprocs=%d\n",
		float64(d.Nanoseconds())/1e6, result, runtime.GOMAXPROCS(0))
}
