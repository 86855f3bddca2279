"""pixelpilot.train: fine-tuning a policy on recorded steps.

One trainer core (``trainer.Trainer``: data order, optimisation, checkpoints, exact resume,
metrics, several processes) runs two objectives: supervised fine-tuning (``sft``) and GRPO
(``grpo``). Samples come from the offline-evaluation adapters and the step sample's own prompt,
target and parser (``data``); rewards are built on evaluation's matching rules (``rewards``).
Nothing heavy is imported here: ``from pixelpilot.train.sft import train_sft``.
"""
