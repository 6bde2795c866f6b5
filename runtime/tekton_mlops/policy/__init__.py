"""Model policy before deploy: CEL rules over a model's verified signature and lineage.

A policy (``spec``) is a YAML or JSON document of named rules, each a CEL expression that
is true when the model passes it, with a message and a severity, and parameters the rules
read as ``params.*``. Before any rule runs, ``evidence`` verifies the model's signature and
every lineage attestation found beside it with one public key; ``inputs`` turns what
verified into the document the rules see; ``decide`` compiles every rule first, then
evaluates each under a time limit (``cel``); ``report`` writes the verdict.

Example::

    policy = parse_policy(read_policy("", "policy.yaml"), {})
    rules = compile_rules(policy)                 # exit 2 naming a rule that does not compile
    evidence = gather(Subject(model_path="model"), key, FetchOptions(), log)
    decision = decide(policy, rules, build_input(evidence, policy.params, now))
"""
