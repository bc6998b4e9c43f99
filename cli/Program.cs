using Sio.Cli;

return Cli.Run(SioCommand.Create(), args);
