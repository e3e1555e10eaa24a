sf-reduce --base - --finetune -
