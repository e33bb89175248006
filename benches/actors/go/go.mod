module myriad/benches/actors

go 1.19
