"""freshrank: continuously fine-tuned BERT-class search ranking on daily log spans."""
