%% Spawn -> run -> exit lifecycles: the driver (the main process) keeps
%% IN_FLIGHT tiny request processes alive at once; each computes X*X+1,
%% sends it to the driver and exits. For every answer the driver spawns a
%% new one, until TOTAL have run.
%%
%% erl -noshell +S 2:2 -pa EBIN -run lifecycles main [TOTAL] [IN_FLIGHT]
%% (defaults 2,000,000 and 10,000)
%%
%% Prints one line:
%%   RESULT bench=lifecycles lang=erlang value=<lifecycles per second> unit=lifecycles/s total=<TOTAL>
-module(lifecycles).
-export([main/0, main/1]).

main() -> main([]).

main(Args) ->
    {Total, InFlight} = case Args of
                            [A, B | _] -> {list_to_integer(A), list_to_integer(B)};
                            [A] -> {list_to_integer(A), 10000};
                            [] -> {2000000, 10000}
                        end,
    Driver = self(),
    T0 = erlang:monotonic_time(nanosecond),
    First = min(InFlight, Total),
    start(Driver, 0, First),
    Sum = collect(Driver, First, Total, Total, 0),
    T1 = erlang:monotonic_time(nanosecond),
    case lists:sum([X * X + 1 || X <- lists:seq(0, Total - 1)]) of
        Sum -> ok;
        Want -> io:format(standard_error, "wrong sum ~b, want ~b~n", [Sum, Want]),
                erlang:halt(1)
    end,
    Ns = T1 - T0,
    io:format("RESULT bench=lifecycles lang=erlang value=~b unit=lifecycles/s total=~b in_flight=~b ns_per_lifecycle=~.1f schedulers=~b~n",
              [round(Total * 1.0e9 / Ns), Total, InFlight, Ns / Total,
               erlang:system_info(schedulers_online)]),
    erlang:halt(0).

request(Driver, X) ->
    spawn(fun() -> Driver ! X * X + 1 end).

%% spawn requests for X in [From, To)
start(_Driver, To, To) -> ok;
start(Driver, X, To) -> request(Driver, X), start(Driver, X + 1, To).

%% Spawned: how many have been spawned; Left: answers still to collect.
collect(_Driver, _Spawned, _Total, 0, Sum) -> Sum;
collect(Driver, Spawned, Total, Left, Sum) ->
    receive
        V when Spawned < Total ->
            request(Driver, Spawned),
            collect(Driver, Spawned + 1, Total, Left - 1, Sum + V);
        V ->
            collect(Driver, Spawned, Total, Left - 1, Sum + V)
    end.
