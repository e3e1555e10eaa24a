sf-reduce --weights-only --base-model a
