sf-reduce --weights-only --base-model a --finetune-model b --features 3
