%% Ping-pong between two processes: ping sends {ping, self()}, pong answers
%% with the atom pong.
%%
%% erl -noshell +S 2:2 -pa EBIN -run pingpong main [ROUND_TRIPS]
%% (default 1,000,000)
%%
%% A round trip is two hops (two message deliveries); the timed part
%% excludes a 10,000-round-trip warm-up. Prints one line:
%%   RESULT bench=pingpong lang=erlang value=<ns per hop> unit=ns/hop hops=<2N>
-module(pingpong).
-export([main/0, main/1]).

main() -> main([]).

main(Args) ->
    N = case Args of [A | _] -> list_to_integer(A); [] -> 1000000 end,
    Pong = spawn(fun pong/0),
    Main = self(),
    spawn(fun() ->
                  rounds(Pong, 10000),
                  T0 = erlang:monotonic_time(nanosecond),
                  rounds(Pong, N),
                  T1 = erlang:monotonic_time(nanosecond),
                  Pong ! stop,
                  Main ! {elapsed, T1 - T0}
          end),
    receive {elapsed, Ns} -> ok end,
    Hops = 2 * N,
    io:format("RESULT bench=pingpong lang=erlang value=~.1f unit=ns/hop hops=~b schedulers=~b~n",
              [Ns / Hops, Hops, erlang:system_info(schedulers_online)]),
    erlang:halt(0).

rounds(_Pong, 0) -> ok;
rounds(Pong, K) ->
    Pong ! {ping, self()},
    receive pong -> rounds(Pong, K - 1) end.

pong() ->
    receive
        {ping, From} -> From ! pong, pong();
        stop -> ok
    end.
