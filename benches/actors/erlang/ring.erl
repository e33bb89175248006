%% A ring of N processes, each waiting in receive and forwarding to the
%% next. A token (the number of hops still to make) goes round the ring M
%% times.
%%
%% erl -noshell +S 2:2 -pa EBIN -run ring main [N] [M]
%% (defaults 100,000 and 10)
%%
%% Spawning the ring and one warm-up round (which leaves every process
%% waiting in its receive) are not timed. Prints one line:
%%   RESULT bench=ring lang=erlang value=<ns per hop> unit=ns/hop hops=<N*M>
-module(ring).
-export([main/0, main/1]).

main() -> main([]).

main(Args) ->
    {N, M} = case Args of
                 [A, B | _] -> {list_to_integer(A), list_to_integer(B)};
                 [A] -> {list_to_integer(A), 10};
                 [] -> {100000, 10}
             end,
    Main = self(),
    Pids = [spawn(fun() -> receive {next, Next} -> node(Next, Main) end end)
            || _ <- lists:seq(1, N)],
    [First | Rest] = Pids,
    lists:foreach(fun({P, Next}) -> P ! {next, Next} end,
                  lists:zip(Pids, Rest ++ [First])),
    %% Warm-up round: N hops.
    First ! N,
    receive done -> ok end,
    Hops = N * M,
    T0 = erlang:monotonic_time(nanosecond),
    First ! Hops,
    receive done -> ok end,
    T1 = erlang:monotonic_time(nanosecond),
    io:format("RESULT bench=ring lang=erlang value=~.1f unit=ns/hop hops=~b actors=~b schedulers=~b~n",
              [(T1 - T0) / Hops, Hops, N, erlang:system_info(schedulers_online)]),
    erlang:halt(0).

node(Next, Main) ->
    receive
        0 -> Main ! done;
        K -> Next ! K - 1
    end,
    node(Next, Main).
