#!/usr/bin/env python
"""Train any zoo method (or your own LightningModule) with LightningCLI.

    python train.py fit --config configs/vanilla/ring8.yaml
    python train.py fit --model vanilla --data ring8 --model.max_gen_steps 2000
    python train.py fit --model my_package.MyGAN --data digits

See README.md and ``python train.py fit --help``.
"""

from zoo.cli import main

if __name__ == "__main__":
    main()
