%% Skynet (github.com/atemerev/skynet) with processes: a 10-ary tree of
%% 1,111,111 processes for a million leaves; every leaf sends its ordinal
%% to its parent, every parent sums its ten children and sends the sum up.
%%
%% erl -noshell +S 2:2 +P 2097152 -pa EBIN -run skynet main [LEAVES]
%% (default 1,000,000; a power of ten. +P: the whole tree may be alive at
%% once, past the default limit of 262,144 processes.)
%%
%% Times from spawning the root to receiving its result. Prints one line:
%%   RESULT bench=skynet lang=erlang value=<ms> unit=ms result=499999500000
-module(skynet).
-export([main/0, main/1]).

main() -> main([]).

main(Args) ->
    Leaves = case Args of [A | _] -> list_to_integer(A); [] -> 1000000 end,
    Main = self(),
    T0 = erlang:monotonic_time(nanosecond),
    spawn(fun() -> skynet(Main, 0, Leaves, 10) end),
    Result = receive R -> R end,
    T1 = erlang:monotonic_time(nanosecond),
    case Leaves * (Leaves - 1) div 2 of
        Result -> ok;
        Want -> io:format(standard_error, "wrong result ~b, want ~b~n", [Result, Want]),
                erlang:halt(1)
    end,
    io:format("RESULT bench=skynet lang=erlang value=~.1f unit=ms result=~b schedulers=~b~n",
              [(T1 - T0) / 1.0e6, Result, erlang:system_info(schedulers_online)]),
    erlang:halt(0).

skynet(Parent, Num, 1, _Div) ->
    Parent ! Num;
skynet(Parent, Num, Size, Div) ->
    Self = self(),
    Sub = Size div Div,
    spawn_children(Self, Num, Sub, Div),
    Parent ! collect(Div, 0).

spawn_children(_Self, _Num, _Sub, 0) -> ok;
spawn_children(Self, Num, Sub, K) ->
    spawn(fun() -> skynet(Self, Num, Sub, 10) end),
    spawn_children(Self, Num + Sub, Sub, K - 1).

collect(0, Sum) -> Sum;
collect(K, Sum) -> receive N -> collect(K - 1, Sum + N) end.
