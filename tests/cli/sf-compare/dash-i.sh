sf-compare -i a.sf --finetune b.sf
