sf-reduce --all-logits --base a.sf --finetune b.sf
