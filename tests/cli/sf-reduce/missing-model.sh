sf-reduce --weights-only --base-model nowhere --finetune-model nowhere2
